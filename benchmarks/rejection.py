"""How well each model says "not a digit", measured on test sets only, through ``--predict``'s own path.

    python -m benchmarks.rejection --data-dir ../shared/data

Each committed model (``--root``: another folder holding ``outputs/``) reads, as ``main.py --predict`` reads a file
(cleaned once, split into digits when the ink is a row of them, its calibration and threshold applied):

- MNIST's 10,000 test digits: the share answered "not a digit", and the accuracy on the digits it answers;
- SEMEION's 1,593 digits of other writers (as its 16x16 scans are handed to ``--predict``): the share rejected;
- the test non-digits of ``analysis.rejection`` (letters of other typefaces, photo crops, zigzag scribbles, noise,
  blank pages): the share rejected, per kind;

the AUROC of its digit score between MNIST's test digits and all the test non-digits, its accuracy and expected
calibration error on MNIST's test set and SEMEION (batched, calibrated). ``1+2+3`` is the ensemble of V1-V3
(``--model 1,2,3 --predict``), measured next to its members. Nothing here chooses
anything: the thresholds come from ``--calibrate`` (development data). Writes ``benchmarks/results/rejection.json``;
docs/predict.md's "Not a digit" table is made from it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import data_utils
import model_strategy
import zoo
from analysis import calibration, evaluation, external, rejection
from benchmarks.common import machine
from core.artifacts import REFERENCE_ROOT, atomic_save_json
from deploy import predict
from digits.prepare import clean

RESULTS = Path(__file__).resolve().parent / "results" / "rejection.json"


def read_all(model: torch.nn.Module, grays: list[torch.Tensor]) -> list[predict.Prediction]:
    """Each grey image read as ``--predict`` reads a file."""
    return [predict.answer_ink(model, f"image {i}", clean(g))[0] for i, g in enumerate(grays)]


def score_of(said: predict.Prediction) -> float:
    return 0.0 if said.score is None else said.score


def overall(row: dict, sizes: dict[str, int]) -> float:
    """The share (%) of all the test non-digits a row rejected, from its per-kind shares."""
    return sum(row["non_digits"][k] * n for k, n in sizes.items()) / sum(sizes.values())


def reader(key: str, root: Path) -> torch.nn.Module:
    """A model calibrated with its threshold, or for "1+2+3" the ensemble of those models."""
    if "+" in key:
        return zoo.ensemble(key.split("+"), out_dir=root)
    strategy = model_strategy.get_strategy(key)
    return predict.calibrated(model_strategy.load_trained(key, root).eval(), root, strategy.stem)


def measure(key: str, root: Path, non_digits: dict[str, list[torch.Tensor]],
            semeion: tuple[torch.Tensor, torch.Tensor] | None, test: data_utils.MNISTTensors,
            semeion_prepared: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    model = reader(key, root)
    threshold = predict.threshold_of(model)
    started = time.perf_counter()
    mnist = read_all(model, list(test.images.float() / 255.0))
    accepted = [(s, int(y)) for s, y in zip(mnist, test.labels) if s.verdict != "not a digit"]
    right = sum(s.verdict == "digit" and s.digit == y for s, y in accepted)
    row = {"model": key, "threshold": threshold, "mnist_rejected": 100 * (1 - len(accepted) / len(mnist)),
           "mnist_accepted_accuracy": 100 * right / max(len(accepted), 1), "non_digits": {},
           "mnist_accuracy": 100 * float((evaluation.probabilities(model, test.images.float() / 255.0).argmax(1)
                                          == test.labels).float().mean())}
    row["ece_mnist"] = calibration.reliability("MNIST test", evaluation.probabilities(model, test.images.float() / 255.0),
                                               test.labels).ece
    if semeion_prepared is not None:
        row["ece_semeion"] = calibration.reliability("SEMEION", evaluation.probabilities(model, semeion_prepared[0]),
                                                     semeion_prepared[1]).ece
    if semeion is not None:
        said = read_all(model, list(semeion[0]))
        row["semeion_rejected"] = 100 * sum(s.verdict == "not a digit" for s in said) / len(said)
    other_scores = []
    for kind, grays in non_digits.items():
        said = read_all(model, grays)
        row["non_digits"][kind] = 100 * sum(s.verdict == "not a digit" for s in said) / len(said)
        other_scores += [score_of(s) for s in said]
    row["auroc"] = rejection.auroc(torch.tensor([score_of(s) for s in mnist]), torch.tensor(other_scores))
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--models", default=",".join([*model_strategy.available_models(), "1+2+3"]),
                   help="models, and ensembles as KEY+KEY+... (default: every model and the ensemble of V1-V3)")
    p.add_argument("--root", type=Path, default=REFERENCE_ROOT, help="the folder holding outputs/ (default: the reference)")
    p.add_argument("--json-out", type=Path, default=RESULTS)
    args = p.parse_args()
    test = data_utils.load_mnist(args.data_dir)["test"]
    try:
        images, labels = external.load_semeion(str(args.data_dir))
        scans = 1 - torch.nn.functional.interpolate(images[:, None].float(), size=128, mode="nearest")[:, 0]
        semeion = (list(scans), labels)  # dark on white at 128x128, as analysis.external hands them to --predict
        semeion_prepared = external.prepared_semeion(str(args.data_dir))
    except external.ExternalDataError:
        semeion = semeion_prepared = None
    non_digits = rejection.test_non_digits()
    rows = []
    for key in args.models.split(","):
        rows.append(measure(key, args.root, non_digits, semeion, test, semeion_prepared))
        r = rows[-1]
        print(f"{key}: threshold {r['threshold']:.3f}; MNIST test rejected {r['mnist_rejected']:.2f}%, accepted read right"
              f" {r['mnist_accepted_accuracy']:.2f}%; SEMEION rejected {r.get('semeion_rejected', float('nan')):.2f}%;"
              f" non-digits rejected {overall(r, {k: len(v) for k, v in non_digits.items()}):.1f}% ("
              + ", ".join(f"{k} {v:.1f}%" for k, v in r["non_digits"].items()) + f"); AUROC {r['auroc']:.4f}"
              f" ({r['seconds']:.0f} s)", flush=True)
    atomic_save_json(args.json_out, {"benchmark": "rejection", "sets": {k: len(v) for k, v in non_digits.items()},
                                     "rows": rows, "machine": machine(),
                                     "command": "python -m benchmarks.rejection --data-dir ../shared/data"})


if __name__ == "__main__":
    main()
