"""The gate an input's digits pass before they are read as digits. A digit's score is the digit detector's
probability that it is a digit at all (``detector``) times the reader's calibrated probability of the digit it
reads (``analysis.rejection.scores``): the probability that it is a digit and this one, were the two independent.
One threshold on that score, the reader's (``--calibrate`` chooses it on development digits), says "not a digit".

One score rather than a threshold on each: the detector and a reader each doubt about 1% of other writers' digits,
rarely the same ones, so two thresholds reject both shares. Multiplied, each one's doubt is weighed with the
other's confidence: a digit the detector doubts passes when the reader is sure of it, and a reader's doubt between
two digits (its top probability is never under a tenth) rejects only ink the detector doubts too
(``benchmarks.gate_shares`` measures both rules on development data). ``--predict``, the web app and the numbers
benchmark all judge through ``judge``, so the rule they measure is the rule they serve. A bitmap stretched to its
frame (``digits.prepare.stretched_bitmap``: SEMEION's format) has lost its digit's width, so the detector judges it
at several widths and the most digit-like counts (``analysis.detector.Detector.digit_probability``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from analysis import detector, rejection
from analysis.evaluation import probabilities


def threshold_of(model: nn.Module) -> float:
    """The score below which ``model`` answers "not a digit": its ``--calibrate`` record's (carried by a calibrated
    model), or 0 (never) for a model without one."""
    return float(getattr(model, "reject_below", 0.0))


def reader(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """The model's probabilities (N, 10) for (N, 28, 28) digits: what settles whether wide ink is one digit or
    several (``digits.prepare.digits_in``)."""
    return lambda digits: probabilities(model, digits)


@dataclass(frozen=True)
class Judgement:
    """What a reader and the detector in front of it say of an input's N digits, left to right."""

    probabilities: Tensor  # (N, 10), the reader's
    reject_below: float = 0.0  # the reader's threshold on the gate's score
    digit_probability: Tensor | None = None  # (N,), the detector's; None where no detector stands in front

    @property
    def scores(self) -> Tensor:
        return rejection.scores(self.probabilities, self.digit_probability)

    def rejection(self) -> str | None:
        """Why these are not digits, or None when every one passes: a number holds digits only, so one piece
        failing rejects the whole input."""
        lowest, at = float(self.scores.min()), int(self.scores.argmin())
        if lowest >= self.reject_below:
            return None
        where = f" (piece {at + 1} of {len(self.probabilities)})" if len(self.probabilities) > 1 else ""
        because = "" if self.digit_probability is None else (
            f" (the digit detector's {float(self.digit_probability[at]):.3f} x the reader's"
            f" {float(self.probabilities[at].max()):.3f})")
        return f"unlike any digit{where}: score {lowest:.3f}{because} is below the threshold {self.reject_below:.3f}"


def judge(model: nn.Module, digits: Tensor, stretched: bool = False) -> Judgement:
    """``model``'s reading of (N, 28, 28) prepared digits, with the digit detector in front of a rejecting reader
    (one that rejects nothing, ``--reject-below 0``, has no detector in front of it either). ``stretched``: the
    input is a bitmap stretched to its frame (``digits.prepare.stretched_bitmap``), which the detector judges at
    several widths; the reader reads it as it is."""
    threshold = threshold_of(model)
    gate = detector.load() if threshold > 0 else None
    marks = torch.full((len(digits),), stretched, dtype=torch.bool)
    return Judgement(probabilities(model, digits), threshold,
                     None if gate is None else gate.digit_probability(digits, marks))
