"""Predictions on new digits: image files as people make them, and Kaggle's digit-recognizer CSV.

Every image goes through the one preparation (``digits.prepare``) and the one inference loop
(``analysis.evaluation.classify``); each bad input is reported on its own, the others still predicted.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from analysis import detector, gate
from analysis.calibration import Calibrated
from analysis.gate import Judgement
from digits.prepare import SIZE, BlankImage, clean, digits_in, mnistify, read_gray, stretched_bitmap


class PredictionInputError(Exception):
    """Inputs could not be read; the message has one line per bad input."""


TOP = 3  # the answers shown per digit: the digit and its runners-up


@dataclass
class Reading:
    """One digit of an input: the most probable digit, its probability, the runners-up, and whether the ink was cut
    from a touching neighbour to get it (an uncertain split)."""

    digit: int
    probability: float
    top: list[tuple[int, float]]
    uncertain_split: bool = False

    @classmethod
    def of(cls, probabilities: Tensor, uncertain_split: bool = False) -> "Reading":
        values, digits = probabilities.topk(TOP)
        top = [(int(d), float(p)) for d, p in zip(digits, values)]
        return cls(top[0][0], top[0][1], top, uncertain_split)

    def to_dict(self) -> dict:
        return {"digit": self.digit, "confidence": self.probability, "top": [[d, p] for d, p in self.top],
                "uncertain_split": self.uncertain_split}


@dataclass
class Prediction:
    """What a model says of one input. ``verdict``: ``digit`` (one digit), ``number`` (several digits in a row;
    ``digit`` is then None and ``number`` holds them all), ``not a digit`` (an input unlike any digit, an empty
    page included: no digit is given, ``score`` and ``reason`` say why), ``unreadable`` (an input that could not
    be read; ``reason`` says why). ``probability`` is the digit's, or for a number the product of its digits';
    ``top`` the digit's runners-up, or for a number each digit's answer in order. ``score``: the lowest digit score
    of its digits (``analysis.gate``: the detector's digit probability times the top probability), which the
    threshold is compared with."""

    source: str
    digit: int | None
    probability: float | None
    top: list[tuple[int, float]] = field(default_factory=list)
    verdict: str = "digit"
    reason: str | None = None
    readings: list[Reading] = field(default_factory=list)  # one per digit, left to right
    score: float | None = None
    digit_probability: float | None = None  # the digit detector's, for its least digit-like piece (None: no detector)

    @classmethod
    def answer(cls, source: str, probabilities: Tensor) -> "Prediction":
        """The prediction for one digit from its 10 class probabilities."""
        reading = Reading.of(probabilities)
        return cls(source, reading.digit, reading.probability, reading.top, readings=[reading], score=reading.probability)

    @classmethod
    def read(cls, source: str, judged: Judgement, uncertain: list[bool]) -> "Prediction":
        """The prediction for an input's N digits, left to right, as the gate judged them (``analysis.gate``):
        "not a digit" when one of them fails it, else one digit or a number."""
        said = cls._read(source, judged, uncertain)
        least = judged.digit_probability
        said.digit_probability = None if least is None else float(least.min())
        return said

    @classmethod
    def _read(cls, source: str, judged: Judgement, uncertain: list[bool]) -> "Prediction":
        lowest = float(judged.scores.min())
        reason = judged.rejection()
        if reason is not None:
            return cls.not_a_digit(source, lowest, reason)
        if len(judged.probabilities) == 1:
            return replace(cls.answer(source, judged.probabilities[0]), score=lowest)
        readings = [Reading.of(p, u) for p, u in zip(judged.probabilities, uncertain)]
        confidence = float(torch.tensor([r.probability for r in readings]).prod())
        return cls(source, None, confidence, [(r.digit, r.probability) for r in readings], "number", None, readings,
                   lowest)

    @classmethod
    def not_a_digit(cls, source: str, score: float, reason: str) -> "Prediction":
        return cls(source, None, score, [], "not a digit", reason, score=score)

    @classmethod
    def unreadable(cls, source: str, reason: str) -> "Prediction":
        return cls(source, None, None, [], "unreadable", reason)

    @property
    def number(self) -> str | None:
        """The digits read, as a string ("7", "2024"), or None for an unreadable input."""
        return "".join(str(r.digit) for r in self.readings) or None

    def to_dict(self) -> dict:
        """The machine-readable form ``--format json`` prints, one object per input."""
        return {"file": self.source, "number": self.number, "confidence": self.probability,
                "top": [[d, p] for d, p in self.top], "verdict": self.verdict, "reason": self.reason,
                "score": self.score, "digit_probability": self.digit_probability,
                "digits": [r.to_dict() for r in self.readings]}

    def line(self) -> str:
        """The human-readable form: the digit with its probability and the runners-up; a number with each digit's."""
        if self.verdict == "unreadable":
            return f"{self.source}: {self.reason}"
        if self.verdict == "not a digit":
            return f"{self.source}: not a digit ({self.reason})"
        if self.verdict == "number":
            each = " · ".join(f"{r.digit} {100 * r.probability:.1f}%" + ("?" if r.uncertain_split else "")
                              for r in self.readings)
            doubt = " (? an uncertain split of touching ink)" if any(r.uncertain_split for r in self.readings) else ""
            return f"{self.source}: {self.number} ({each}){doubt}"
        return f"{self.source}: " + " | ".join(f"{d} ({100 * p:.1f}%)" for d, p in self.top)


def read_kaggle_csv(path: Path) -> tuple[Tensor, Tensor | None, list[int], list[str]]:
    """Kaggle's digit-recognizer rows (``pixel0``..``pixel783``, optional ``label`` first) as uint8 images,
    their labels, their ``ImageId`` (1-based data row) and one problem line per bad row (blank lines are
    skipped). A file that cannot be read at all raises ``PredictionInputError``."""
    problems, images, labels, ids = [], [], [], []
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise PredictionInputError(f"{path}: empty file")
            has_label = bool(header) and header[0].strip().lower() == "label"
            expected = 785 if has_label else 784
            pixel_names = header[1:] if has_label else header
            if len(header) != expected or pixel_names[0].strip() != "pixel0" or pixel_names[-1].strip() != "pixel783":
                raise PredictionInputError(f"{path}: header must be [label,]pixel0..pixel783, got {len(header)} columns")
            row_id = 0
            for row in reader:
                if not any(field.strip() for field in row):
                    continue
                row_id += 1
                try:
                    values = [int(v) for v in row]
                    if len(values) != expected or not all(0 <= v <= 255 for v in values[-784:]):
                        raise ValueError
                    if has_label and not 0 <= values[0] <= 9:
                        raise ValueError
                except ValueError:
                    wanted = "a label 0-9, then 784 pixels 0-255" if has_label else "784 pixels 0-255"
                    problems.append(f"{path} line {reader.line_num}: expected {expected} integers ({wanted}),"
                                    f" got {len(row)} fields")
                    continue
                images.append(values[-784:])
                ids.append(row_id)
                if has_label:
                    labels.append(values[0])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise PredictionInputError(f"{path}: cannot be read ({reason})") from None
    if not images and not problems:
        raise PredictionInputError(f"{path}: no rows after the header")
    pixels = torch.tensor(images, dtype=torch.uint8).view(-1, SIZE, SIZE)
    return pixels, (torch.tensor(labels) if labels else None), ids, problems


def gray_of(image: str | Path | Tensor | Any) -> Tensor:
    """One input as (H, W) grey levels in [0, 1]: an image file, or a (H, W) array or tensor of grey levels (uint8,
    or floats in [0, 1]); raises ValueError naming what is wrong."""
    if isinstance(image, (str, Path)):
        return read_gray(Path(image))
    gray = image if isinstance(image, Tensor) else torch.from_numpy(np.array(image))  # a copy: arrays may be read-only
    if gray.dim() != 2:
        raise ValueError(f"an image array must be (H, W) grey levels, got shape {tuple(gray.shape)}")
    return gray.float() / 255.0 if gray.dtype == torch.uint8 else gray.float()


def read_input(image: str | Path | Tensor | Any) -> Tensor:
    """One input as the single (28, 28) digit the model sees, through the one preparation (``--inspect``'s and the
    Kaggle path's unit); raises ValueError naming what is wrong."""
    return mnistify(gray_of(image))


def name_of(image: object, index: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {index}"


def prepare_images(paths: list[Path]) -> tuple[list[Path], Tensor, list[str]]:
    """The readable images as (N, 28, 28) single digits, and one problem line for each unreadable one."""
    prepared, reasons = {}, {}
    for i, path in enumerate(paths):
        try:
            prepared[i] = read_input(path)
        except ValueError as exc:
            reasons[i] = str(exc)
    digits = torch.stack(list(prepared.values())) if prepared else torch.zeros(0, SIZE, SIZE)
    return [paths[i] for i in prepared], digits, [f"{paths[i]}: {r}" for i, r in reasons.items()]


def with_threshold(model: nn.Module, reject_below: float) -> nn.Module:
    """``model`` answering "not a digit" below ``reject_below`` (``--reject-below``): its calibration kept."""
    if isinstance(model, Ensemble):
        return Ensemble(list(model.members), reject_below)
    if isinstance(model, Calibrated):
        return Calibrated(model.model, model.temperature, reject_below)
    return Calibrated(model, 1.0, reject_below)


class Ensemble(nn.Module):
    """Several (calibrated) models read as one: the mean of their probabilities, returned as its logarithm so that
    a softmax gives it back and every reading path treats the ensemble as one model. ``reject_below``: its own
    threshold (``analysis.rejection.ensemble_threshold``), chosen on development digits as a model's is."""

    def __init__(self, members: list[nn.Module], reject_below: float = 0.0) -> None:
        super().__init__()
        self.members, self.reject_below = nn.ModuleList(members), float(reject_below)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([m(x).softmax(-1) for m in self.members]).mean(0).clamp_min(1e-12).log()


def answer_ink(model: nn.Module, name: str, ink: Tensor) -> tuple[Prediction, Tensor | None]:
    """What ``model`` reads in cleaned ink (``digits.prepare.clean``), and the (K, 28, 28) digits it saw: the web
    app cleans an upload once and lets every model read it. Ink with nothing in it is no digit (score 0)."""
    try:
        pieces = digits_in(ink, gate.reader(model))
    except BlankImage as exc:
        return Prediction.not_a_digit(name, 0.0, f"{exc}"), None
    except ValueError as exc:
        return Prediction.unreadable(name, str(exc)), None
    seen = torch.stack([digit for digit, _ in pieces])
    stretched = len(pieces) == 1 and stretched_bitmap(ink)  # a scan with each axis scaled to fill its frame
    return Prediction.read(name, gate.judge(model, seen, stretched), [u for _, u in pieces]), seen


def answer_inputs(model: nn.Module, images: list) -> tuple[list[Prediction], dict[int, Tensor]]:
    """A ``Prediction`` for every input in order (unreadable ones too), and the (K, 28, 28) digits the model saw
    in each readable one (K = 1 for one digit)."""
    said, seen = [], {}
    for i, image in enumerate(images):
        try:
            gray = gray_of(image)
        except ValueError as exc:
            said.append(Prediction.unreadable(name_of(image, i), str(exc)))
            continue
        answer, digits = answer_ink(model, name_of(image, i), clean(gray))
        said.append(answer)
        if digits is not None:
            seen[i] = digits
    return said, seen


def predict_images(model: nn.Module, images: list) -> list[Prediction]:
    """Every input (files, arrays, tensors), or one error listing each unreadable one (the CLI predicts the rest
    instead)."""
    said, _ = answer_inputs(model, images)
    problems = [f"{p.source}: {p.reason}" for p in said if p.verdict == "unreadable"]
    if problems:
        raise PredictionInputError("\n".join(problems))
    return said


def calibrated(model: nn.Module, root: Path | str, stem: str) -> nn.Module:
    """``model`` with the temperature ``--calibrate`` fitted for it (``<stem>_calibration.json`` under ``root``), or
    as it is when it has none: the same answers, probabilities that mean what they say."""
    path = Path(root) / "outputs" / f"{stem}_calibration.json"
    try:
        record = json.loads(path.read_text())
        temperature = float(record["temperature"])
        reject_below = float(record.get("reject_below") or 0.0)  # records before "not a digit": never
    except FileNotFoundError:
        return model
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PredictionInputError(f"{path}: not a calibration record ({type(exc).__name__}); run --calibrate again")
    if not 0.01 <= temperature <= 100:
        raise PredictionInputError(f"{path}: temperature {temperature} is out of range; run --calibrate again")
    if not 0 <= reject_below <= 1:
        raise PredictionInputError(f"{path}: threshold {reject_below} is outside [0, 1]; run --calibrate again")
    _same_detector(path, record)
    return Calibrated(model, temperature, reject_below)


def _same_detector(path: Path, record: dict) -> None:
    """Refuse a threshold chosen with another digit detector than the one that would stand in front: it was chosen
    on a score the detector is part of (``analysis.gate``). Where no detector is found, the reader decides alone."""
    chosen_with = (record.get("rejection") or {}).get("detector")
    found = detector.load()
    if chosen_with and found is not None and found.fingerprint != chosen_with:
        raise PredictionInputError(f"{path}: its threshold was chosen with another digit detector ({chosen_with}, now"
                                   f" {found.fingerprint}); run --calibrate again")


def submission_csv(ids: list[int], predicted: Tensor) -> str:
    """Kaggle's submission format: ``ImageId,Label`` with the rows' 1-based ids."""
    return "ImageId,Label\n" + "".join(f"{i},{int(d)}\n" for i, d in zip(ids, predicted.tolist()))


def png_bytes(digit: Tensor) -> bytes:
    """A (28, 28) digit in [0, 1] as an 8-bit PNG, light on black as MNIST stores it."""
    buffer = io.BytesIO()
    Image.fromarray((digit * 255).round().byte().numpy(), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
