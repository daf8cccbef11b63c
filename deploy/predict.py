"""Predictions on new digits: image files as people make them, and Kaggle's digit-recognizer CSV.

Every image goes through the one preparation (``digits.prepare``) and the one inference loop
(``analysis.evaluation.classify``); each bad input is reported on its own, the others still predicted.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from analysis.evaluation import probabilities
from digits.prepare import SIZE, load_image, mnistify


class PredictionInputError(Exception):
    """Inputs could not be read; the message has one line per bad input."""


TOP = 3  # the answers shown per input: the digit and its runners-up


@dataclass
class Prediction:
    """What a model says of one input. ``verdict`` is ``digit`` for an answer, ``unreadable`` for an input that
    could not be read or held no digit (``reason`` says why; ``digit`` is then None)."""

    source: str
    digit: int | None
    probability: float | None
    top: list[tuple[int, float]] = field(default_factory=list)  # the TOP most probable digits, most probable first
    verdict: str = "digit"
    reason: str | None = None

    @classmethod
    def answer(cls, source: str, probabilities: Tensor) -> "Prediction":
        """The prediction for one input from its 10 class probabilities."""
        values, digits = probabilities.topk(TOP)
        top = [(int(d), float(p)) for d, p in zip(digits, values)]
        return cls(source, top[0][0], top[0][1], top)

    @classmethod
    def unreadable(cls, source: str, reason: str) -> "Prediction":
        return cls(source, None, None, [], "unreadable", reason)

    def to_dict(self) -> dict:
        """The machine-readable form ``--format json`` prints, one object per input."""
        return {"file": self.source, "number": None if self.digit is None else str(self.digit),
                "confidence": self.probability, "top": [[d, p] for d, p in self.top], "verdict": self.verdict,
                "reason": self.reason}

    def line(self) -> str:
        """The human-readable form: the digit with its probability, then the runners-up."""
        if self.digit is None:
            return f"{self.source}: {self.reason}"
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


def read_input(image: str | Path | Tensor | Any) -> Tensor:
    """One input as the (28, 28) digit the model sees: an image file, or a (H, W) array or tensor of grey levels
    (uint8, or floats in [0, 1]), through the one preparation; raises ValueError naming what is wrong."""
    if isinstance(image, (str, Path)):
        return load_image(Path(image))
    gray = image if isinstance(image, Tensor) else torch.from_numpy(np.array(image))  # a copy: arrays may be read-only
    if gray.dim() != 2:
        raise ValueError(f"an image array must be (H, W) grey levels, got shape {tuple(gray.shape)}")
    return mnistify(gray.float() / 255.0 if gray.dtype == torch.uint8 else gray.float())


def name_of(image: object, index: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {index}"


def read_inputs(images: list) -> tuple[dict[int, Tensor], dict[int, str]]:
    """Each readable input's prepared digit and each unreadable one's reason, by position."""
    prepared, reasons = {}, {}
    for i, image in enumerate(images):
        try:
            prepared[i] = read_input(image)
        except ValueError as exc:
            reasons[i] = str(exc)
    return prepared, reasons


def prepare_images(paths: list[Path]) -> tuple[list[Path], Tensor, list[str]]:
    """The readable images as (N, 28, 28) digits, and one problem line for each unreadable one."""
    prepared, reasons = read_inputs(paths)
    digits = torch.stack(list(prepared.values())) if prepared else torch.zeros(0, SIZE, SIZE)
    return [paths[i] for i in prepared], digits, [f"{paths[i]}: {r}" for i, r in reasons.items()]


def answer_inputs(model: nn.Module, images: list) -> tuple[list[Prediction], dict[int, Tensor]]:
    """A ``Prediction`` for every input in order (unreadable ones too), and the digits the model saw."""
    prepared, reasons = read_inputs(images)
    said = {i: Prediction.unreadable(name_of(images[i], i), r) for i, r in reasons.items()}
    if prepared:
        for i, p in zip(prepared, probabilities(model, torch.stack(list(prepared.values())))):
            said[i] = Prediction.answer(name_of(images[i], i), p)
    return [said[i] for i in range(len(images))], prepared


def predict_images(model: nn.Module, images: list) -> list[Prediction]:
    """Every input (files, arrays, tensors), or one error listing each unreadable one (the CLI predicts the rest
    instead)."""
    said, _ = answer_inputs(model, images)
    problems = [f"{p.source}: {p.reason}" for p in said if p.digit is None]
    if problems:
        raise PredictionInputError("\n".join(problems))
    return said


def submission_csv(ids: list[int], predicted: Tensor) -> str:
    """Kaggle's submission format: ``ImageId,Label`` with the rows' 1-based ids."""
    return "ImageId,Label\n" + "".join(f"{i},{int(d)}\n" for i, d in zip(ids, predicted.tolist()))


def png_bytes(digit: Tensor) -> bytes:
    """A (28, 28) digit in [0, 1] as an 8-bit PNG, light on black as MNIST stores it."""
    buffer = io.BytesIO()
    Image.fromarray((digit * 255).round().byte().numpy(), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
