"""The gate an input's digits pass before they are read as digits: the digit detector in front (``detector``) and
the reader's own score (``analysis.rejection``). ``--predict``, the web app and the numbers benchmark all judge
through ``judge``, so the rule they measure is the rule they serve.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from analysis import detector
from analysis.evaluation import probabilities


def threshold_of(model: nn.Module) -> float:
    """The score below which ``model`` answers "not a digit": its ``--calibrate`` record's (carried by a calibrated
    model), or 0 (never) for a model without one."""
    return float(getattr(model, "reject_below", 0.0))


def confidence(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """The model's confidence in each of (N, 28, 28) digits: what settles whether wide ink is one digit or two
    (``digits.segment``)."""
    return lambda digits: probabilities(model, digits).max(1).values


@dataclass(frozen=True)
class Judgement:
    """What a reader and the detector in front of it say of an input's N digits, left to right."""

    probabilities: Tensor  # (N, 10), the reader's
    reject_below: float = 0.0  # the reader's threshold on its top probability
    digit_probability: Tensor | None = None  # (N,), the detector's; None where no detector stands in front
    detector_below: float = 0.0

    @property
    def scores(self) -> Tensor:
        return self.probabilities.max(1).values

    def rejection(self) -> str | None:
        """Why these are not digits, or None when every one passes: a number holds digits only, so one piece
        failing either test rejects the whole input. The detector is asked first."""
        many = len(self.probabilities) > 1
        if self.digit_probability is not None and float(self.digit_probability.min()) < self.detector_below:
            where = f" (piece {int(self.digit_probability.argmin()) + 1} of {len(self.probabilities)})" if many else ""
            return (f"unlike any digit{where}: the digit detector gives it {float(self.digit_probability.min()):.3f},"
                    f" below its threshold {self.detector_below:.3f}")
        lowest = float(self.scores.min())
        if lowest < self.reject_below:
            where = f" (piece {int(self.scores.argmin()) + 1} of {len(self.probabilities)})" if many else ""
            return f"unlike any digit{where}: score {lowest:.3f} is below the threshold {self.reject_below:.3f}"
        return None


def judge(model: nn.Module, digits: Tensor) -> Judgement:
    """``model``'s reading of (N, 28, 28) prepared digits, with the digit detector in front of a rejecting reader
    (one that rejects nothing, ``--reject-below 0``, has no detector in front of it either)."""
    threshold = threshold_of(model)
    gate = detector.load() if threshold > 0 else None
    return Judgement(probabilities(model, digits), threshold,
                     None if gate is None else gate.digit_probability(digits), 0.0 if gate is None else gate.threshold)
