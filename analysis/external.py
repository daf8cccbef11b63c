"""Handwriting the models never saw: SEMEION (other writers, another scanner), UCI's optdigits (other writers
again, another format) and MNIST's test set split by writer population (NIST series hsf_0, Census
employees; hsf_4, high-school students), from QMNIST's labels.

SEMEION's 16x16 binary digits and optdigits' 8x8 grey ones are handed in the way a user hands in a scan —
dark ink on white, a 128x128 PNG — and go through exactly the preparation ``--predict`` uses on image files
(``digits.prepare.as_scans``). Files are verified by MD5 like MNIST's.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from analysis import evaluation
from core.artifacts import package_dir
from data_utils import QMNIST_FILES, MNISTDataError, MNISTTensors, read_qmnist, read_verified
from digits.prepare import as_scans, binary_scan, block_scan, scans_as_read

SEMEION_FILE, SEMEION_MD5 = "SEMEION/semeion.data", "dd10ba7e844b4f5de6e49b2f66cc6ca0"
QMNIST_TEST_FILE = QMNIST_FILES["test"][0]
OPTDIGITS_FILE = "datasets/data/digits.csv.gz"  # inside scikit-learn, which ships it
OPTDIGITS_MD5 = "a0339c30a8a5312a1b6f9e5c719dcce5"  # of the uncompressed text: a recompressed copy still passes
SEMEION = "SEMEION (other writers, --predict's preparation)"
OPTDIGITS = "optdigits (13 other writers, 8×8 grey, --predict's preparation)"
SERIES = {0: "hsf_0 (Census employees)", 4: "hsf_4 (high-school students)"}


class ExternalDataError(MNISTDataError):
    """An external data file is missing, unreadable or not the expected one; the message names it."""


@dataclass
class ExternalScore:
    name: str
    images: int
    accuracy: float  # percent
    per_digit: list[float] | None = None  # percent of each true digit read right (None: the digit is absent)
    confusion: list[list[int]] | None = None  # rows: true digit, columns: predicted digit

    def to_dict(self) -> dict:
        return asdict(self)

    def per_digit_line(self) -> str:
        """Each true digit's accuracy on one line: where a model fails on other people's writing."""
        return " · ".join(f"{d}: {'-' if a is None else f'{a:.1f}%'}" for d, a in enumerate(self.per_digit or []))


def score(name: str, predicted: Tensor, labels: Tensor) -> ExternalScore:
    """Accuracy overall and per true digit, and the confusion matrix, of ``predicted`` against ``labels``."""
    confusion = evaluation.confusion_matrix(predicted, labels)
    support = confusion.sum(1)
    per_digit = [round(100 * int(confusion[d, d]) / int(n), 2) if n else None for d, n in enumerate(support)]
    return ExternalScore(name, len(labels), round(100 * float((predicted == labels).float().mean()), 2), per_digit,
                         confusion.tolist())


def _verified(root: Path | str, name: str, md5: str) -> bytes:
    path = Path(root) / name
    if not path.is_file():
        raise ExternalDataError(f"{path}: missing; --data-dir must hold {SEMEION_FILE} and {QMNIST_TEST_FILE}"
                                " (see the data README)")
    return read_verified(path, md5)


def load_semeion(root: Path | str) -> tuple[Tensor, Tensor]:
    """SEMEION's 1,593 digits as (N, 16, 16) ink coverage in {0, 1} and their labels."""
    rows = [line.split() for line in _verified(root, SEMEION_FILE, SEMEION_MD5).decode("ascii").splitlines()
            if line.strip()]
    values = torch.tensor([[float(v) for v in row[:266]] for row in rows])
    return values[:, :256].view(-1, 16, 16), values[:, 256:].argmax(1)


def optdigits_path() -> Path:
    """Where the installed scikit-learn keeps optdigits (found without importing scikit-learn)."""
    sklearn = package_dir("sklearn")
    if sklearn is None:
        raise ExternalDataError("optdigits: scikit-learn, which ships it, is not installed (pip install -r requirements.txt)")
    return sklearn / OPTDIGITS_FILE


def load_optdigits(path: Path | None = None) -> tuple[Tensor, Tensor]:
    """The test part of UCI's optdigits (Alpaydin and Kaynak, Bogazici University) as scikit-learn ships it:
    1,797 digits written by 13 people, each a 32x32 binary bitmap counted in 4x4 blocks, as (N, 8, 8) ink
    coverage in [0, 1] (count / 16) and their labels."""
    path = path or optdigits_path()
    try:
        text = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:  # missing, unreadable, or not (all) gzip
        raise ExternalDataError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    digest = hashlib.md5(text).hexdigest()
    if digest != OPTDIGITS_MD5:
        raise ExternalDataError(f"{path}: checksum mismatch (MD5 {digest} of its content, expected {OPTDIGITS_MD5})")
    values = torch.tensor([[int(v) for v in line.split(",")] for line in text.decode("ascii").splitlines()])
    return values[:, :64].view(-1, 8, 8).float() / 16, values[:, 64]


def binary_scans(images: Tensor) -> Tensor:
    """MNIST digits (N, 28, 28) in [0, 1] as another dataset's maker would store them: each digit's ink box
    stretched on both axes to 16 x 16 (area sampling) and thresholded at one half, like SEMEION's binary
    scans (``digits.prepare.binary_scan``, which the ``scan`` augmentation trains on). Built from training
    writers held out for validation, it is a development set for scanned input that never touches SEMEION
    or MNIST's test set."""
    return binary_scan(images[:, None], torch.full((len(images),), 0.5))


def block_scans(images: Tensor) -> Tensor:
    """MNIST digits (N, 28, 28) in [0, 1] as optdigits' makers stored digits: each ink box scaled by its larger
    side to a 32x32 bitmap thresholded at one half, counted in 4x4 blocks (``digits.prepare.block_scan``). Like
    ``binary_scans``, a development set when built from held-out training writers."""
    return block_scan(images[:, None], torch.full((len(images),), 0.5))


def prepared_semeion(root: str) -> tuple[Tensor, Tensor]:
    """SEMEION's digits as ``--predict`` prepares them (``as_scans``) and their labels, prepared once per
    process: scoring several models on them prepares 1,593 images only once."""
    digits, _, labels = _semeion_as_read(root)
    return digits, labels


def semeion_stretched(root: str) -> Tensor:
    """(1593,) whether ``--predict`` finds each SEMEION scan a bitmap stretched to its frame (the digit detector
    then judges it at several widths: ``digits.prepare.stretched_bitmap``)."""
    return _semeion_as_read(root)[1]


@functools.lru_cache(maxsize=2)
def _semeion_as_read(root: str) -> tuple[Tensor, Tensor, Tensor]:
    images, labels = load_semeion(root)
    return (*scans_as_read(images), labels)


def semeion_pages(root: str) -> tuple[list[Tensor], Tensor]:
    """SEMEION's digits as the files a user would hand ``--predict``: dark ink on white, 128x128, with labels."""
    images, labels = load_semeion(root)
    pages = 1 - torch.nn.functional.interpolate(images[:, None].float(), size=128, mode="nearest")[:, 0]
    return list(pages), labels


@functools.lru_cache(maxsize=1)
def prepared_optdigits() -> tuple[Tensor, Tensor]:
    """optdigits as ``--predict`` prepares it (``as_scans``) and its labels, prepared once per process."""
    images, labels = load_optdigits()
    return as_scans(images), labels


def test_series(root: Path | str) -> Tensor:
    """The NIST series (0 or 4) of each of MNIST's 10,000 test digits, from QMNIST's test labels."""
    table = read_qmnist(root, "test")
    if table is None:
        raise ExternalDataError(f"{Path(root) / QMNIST_TEST_FILE}: missing; --data-dir must hold {SEMEION_FILE} and"
                                f" {QMNIST_TEST_FILE} (see the data README)")
    return table[:, 1]  # column 1: the NIST HSF series


def evaluate_external(model: nn.Module, mnist_test: MNISTTensors, root: Path | str) -> list[ExternalScore]:
    """Accuracy on SEMEION and optdigits (through --predict's preparation) and on MNIST's test set per writer
    population."""
    scores = []
    for name, (digits, labels) in ((SEMEION, prepared_semeion(str(root))), (OPTDIGITS, prepared_optdigits())):
        scores.append(score(name, evaluation.classify(model, digits)[0], labels))
    series = test_series(root)
    predicted, _ = evaluation.classify(model, mnist_test.images.float() / 255.0)
    for number, population in SERIES.items():
        chosen = series == number
        scores.append(score(f"MNIST test, {population}", predicted[chosen], mnist_test.labels[chosen]))
    return scores
