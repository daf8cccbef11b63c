"""Confidences that mean what they say: one temperature per model, fitted on held-out digits, and how well it calibrates.

A softmax's top probability is a claim: of the digits answered with 90%, nine in ten should be right. Temperature
scaling (Guo et al., 2017) divides the logits by one number ``T`` fitted to minimise the negative log-likelihood
on digits the model never trained on; the answers do not change, only how sure they claim to be. Fitted here on
the development digits of other writers and fonts (``development_digits``: OPTDIGITS' training writers, through
``--predict``'s preparation, and the development handwriting fonts, which no recipe trains on) — never on
MNIST's test set, SEMEION or scikit-learn's optdigits, which are only measured. The expected calibration error
(ECE) is the gap between confidence and accuracy, averaged over 15 equal-width confidence bins weighted by
their digits.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from digits import font_digits
from digits.prepare import as_scans

BINS = 15
OPTDIGITS_DEV = "OPTDIGITS/optdigits-train.csv"
OPTDIGITS_DEV_MD5 = "268ce7771f3f15afbc54402478b1d454"


class CalibrationDataError(Exception):
    """A development file is missing or not what the data README says; the message names it."""


class Calibrated(nn.Module):
    """``model`` with its logits divided by ``temperature``: the same answers, calibrated probabilities. It carries
    the threshold below which its top probability means "not a digit" (``reject_below``, 0: never;
    ``analysis.rejection``)."""

    def __init__(self, model: nn.Module, temperature: float, reject_below: float = 0.0) -> None:
        super().__init__()
        self.model, self.temperature, self.reject_below = model, float(temperature), float(reject_below)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) / self.temperature


@dataclass(frozen=True)
class Reliability:
    """One set's calibration: ECE (%) and, per confidence bin, the digits, their mean confidence and accuracy."""

    name: str
    digits: int
    ece: float
    counts: list[int]
    confidence: list[float]
    accuracy: list[float]


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (searched over log T, which keeps it
    positive)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    loss = nn.CrossEntropyLoss()

    def closure() -> Tensor:
        optimizer.zero_grad()
        value = loss(logits / log_t.exp(), labels)
        value.backward()
        return value

    optimizer.step(closure)
    return float(log_t.detach().exp())


def reliability(name: str, probabilities: Tensor, labels: Tensor, bins: int = BINS) -> Reliability:
    """How far the top probability is from the accuracy, per confidence bin and overall (ECE, in %)."""
    confidence, predicted = probabilities.max(1)
    right = (predicted == labels).float()
    which = (confidence * bins).long().clamp(max=bins - 1)
    counts, conf, acc, gap = [], [], [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        counts.append(n)
        conf.append(round(float(confidence[inside].mean()), 4) if n else 0.0)
        acc.append(round(float(right[inside].mean()), 4) if n else 0.0)
        gap += n * abs(conf[-1] - acc[-1]) if n else 0.0
    return Reliability(name, len(labels), round(100 * gap / max(len(labels), 1), 3), counts, conf, acc)


def load_optdigits_development(root: Path | str) -> tuple[Tensor, Tensor]:
    """OPTDIGITS' 3,823 training-writer digits (a development set) as (N, 8, 8) ink coverage and their labels."""
    path = Path(root) / OPTDIGITS_DEV
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CalibrationDataError(f"{path}: cannot be read ({exc.strerror})") from None
    if hashlib.md5(text).hexdigest() != OPTDIGITS_DEV_MD5:
        raise CalibrationDataError(f"{path}: checksum mismatch (expected MD5 {OPTDIGITS_DEV_MD5})")
    values = torch.tensor([[int(v) for v in line.split(",")] for line in text.decode("ascii").splitlines() if line])
    return values[:, :64].view(-1, 8, 8).float() / 16, values[:, 64]


@functools.lru_cache(maxsize=2)
def development_digits(root: Path | str) -> dict[str, tuple[Tensor, Tensor]]:
    """The held-out digits temperatures are fitted on, prepared as ``--predict`` prepares them, with labels
    (prepared once per process: calibrating several models prepares the scans once)."""
    scans, labels = load_optdigits_development(root)
    fonts, font_labels = font_digits.load("development").digits()
    return {"OPTDIGITS training writers (development)": (as_scans(scans), labels),
            "development fonts": (fonts.float() / 255.0, font_labels)}


def record(temperature: float, fitted_on: dict[str, int], sets: list[tuple[Reliability, Reliability]]) -> dict:
    """What ``--calibrate`` writes beside the weights: the temperature, where it was fitted, each set before/after."""
    return {"temperature": round(temperature, 4), "fitted_on": fitted_on, "bins": BINS,
            "sets": [{"before": asdict(b), "after": asdict(a)} for b, a in sets],
            "note": "fitted on development digits only; MNIST's test set, SEMEION and optdigits are only measured"}
