"""How a model reads what users hand it, measured on test sets through ``--predict``'s own path.

One record per model (``measure``), which ``--evaluate-reading`` puts in the model's metrics JSON and
``benchmarks.rejection`` gathers for the docs table: accuracy and expected calibration error (batched, calibrated)
on MNIST's test set and SEMEION; the share of MNIST's test digits and of SEMEION's other writers answered "not a
digit" and the accuracy on the MNIST digits it does answer, each read as a file is read (cleaned once, split when
the ink is a row of digits, calibration and threshold applied); the share of the test non-digits rejected, per
kind (``analysis.rejection.test_non_digits``); the AUROC of the digit score between MNIST's test digits and those
non-digits; and, when asked, how often 4-digit numbers of each spacing (and single digits) are read exactly
(``analysis.numbers``). Nothing here chooses anything: the thresholds come from ``--calibrate``.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from analysis import calibration, numbers, rejection
from analysis.evaluation import probabilities
from analysis.gate import threshold_of
from data_utils import SPLIT_SIZES
from deploy.predict import Prediction, answer_ink
from digits.prepare import clean

NUMBER_LENGTH = 4


def read_all(model: nn.Module, grays: list[Tensor]) -> list[Prediction]:
    """Each grey (H, W) image read as ``--predict`` reads a file."""
    return [answer_ink(model, f"image {i}", clean(g))[0] for i, g in enumerate(grays)]


def score_of(said: Prediction) -> float:
    return 0.0 if said.score is None else said.score


def overall(row: dict, sizes: dict[str, int]) -> float:
    """The share (%) of all the test non-digits a record rejected, from its per-kind shares."""
    return sum(row["non_digits"][k] * n for k, n in sizes.items()) / sum(sizes.values())


def accepted_read_right(row: dict, test_digits: int = SPLIT_SIZES["test"]) -> str:
    """A record's accuracy on the MNIST test digits it accepted, with the count it stands on, e.g. ``99.50% (50
    wrong of 9,996)``: a share rounded to two decimals can land on a bar it misses by a digit."""
    accepted = round(test_digits * (1 - row["mnist_rejected"] / 100))
    wrong = round(accepted * (1 - row["mnist_accepted_accuracy"] / 100))
    return f"{row['mnist_accepted_accuracy']:.2f}% ({wrong} wrong of {accepted:,})"


def measure(model: nn.Module, test_images: Tensor, test_labels: Tensor, non_digits: dict[str, list[Tensor]],
            semeion: tuple[list[Tensor], Tensor] | None = None, semeion_prepared: tuple[Tensor, Tensor] | None = None,
            numbers_per_kind: int = 0, numbers_seed: int = 1) -> dict:
    """The reading record of a calibrated ``model`` (its threshold carried with it): ``test_images`` (N, 28, 28)
    uint8 MNIST test digits; ``semeion``: SEMEION's scans as the grey images a user would hand over, with labels;
    ``semeion_prepared``: the same prepared, for the batched accuracy; ``numbers_per_kind`` > 0 also reads that
    many numbers of each spacing, and as many single digits."""
    started = time.perf_counter()
    batch = test_images.float() / 255.0
    probs = probabilities(model, batch)
    said = read_all(model, list(batch))
    accepted = [(s, int(y)) for s, y in zip(said, test_labels) if s.verdict != "not a digit"]
    right = sum(s.verdict == "digit" and s.digit == y for s, y in accepted)
    row = {"threshold": threshold_of(model),
           "mnist_accuracy": 100 * float((probs.argmax(1) == test_labels).float().mean()),
           "ece_mnist": calibration.reliability("MNIST test", probs, test_labels).ece,
           "mnist_rejected": 100 * (1 - len(accepted) / len(said)),
           "mnist_accepted_accuracy": 100 * right / max(len(accepted), 1), "non_digits": {}}
    if semeion_prepared is not None:
        row["semeion_accuracy"] = 100 * float((probabilities(model, semeion_prepared[0]).argmax(1)
                                               == semeion_prepared[1]).float().mean())
        row["ece_semeion"] = calibration.reliability("SEMEION", probabilities(model, semeion_prepared[0]),
                                                     semeion_prepared[1]).ece
    if semeion is not None:
        read = read_all(model, semeion[0])
        row["semeion_rejected"] = 100 * sum(s.verdict == "not a digit" for s in read) / len(read)
    other_scores = []
    for kind, grays in non_digits.items():
        read = read_all(model, grays)
        row["non_digits"][kind] = 100 * sum(s.verdict == "not a digit" for s in read) / len(read)
        other_scores += [score_of(s) for s in read]
    row["non_digits_rejected"] = overall(row, {k: len(v) for k, v in non_digits.items()})
    row["auroc"] = rejection.auroc(torch.tensor([score_of(s) for s in said]), torch.tensor(other_scores))
    if numbers_per_kind:
        scores = [numbers.score(model, test_images, test_labels, kind, NUMBER_LENGTH, numbers_per_kind, numbers_seed)
                  for kind in numbers.KINDS]
        scores.append(numbers.score(model, test_images, test_labels, "gaps", 1, numbers_per_kind, numbers_seed))
        row["numbers"] = [s.to_dict() for s in scores]
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row
