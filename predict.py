"""Predictions on new digits: image files of any size and polarity, and Kaggle's digit-recognizer CSV.

Images are made to look like MNIST's own: grey levels, light digit on black (inverted when the
background is light), the digit's bounding box scaled to fit 20x20 pixels, then placed in a 28x28
field so that its centre of mass sits at the centre (LeCun et al.'s recipe for MNIST).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from artifacts import ArtifactPaths, atomic_write_text
from data_utils import normalize
from model_strategy import get_strategy, load_trained
from training import inference

INK_THRESHOLD = 0.2  # of full brightness, after inversion: what counts as part of the digit
BOX = 20
SIZE = 28


class PredictionInputError(Exception):
    """One or more inputs could not be read; the message has one line per bad input."""


@dataclass
class Prediction:
    source: str
    digit: int
    probability: float


def mnistify(gray: Tensor) -> Tensor:
    """A (H, W) float image in [0, 1], any polarity, to a (28, 28) MNIST-style digit in [0, 1]."""
    border = torch.cat([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 0.5:  # dark ink on light paper: MNIST is light ink on black
        gray = 1.0 - gray
    ink = gray > INK_THRESHOLD
    if not ink.any():
        raise ValueError("no digit found (the image is blank)")
    rows, cols = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
    crop = gray[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    scale = BOX / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    digit = F.interpolate(crop[None, None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    digit = digit.clamp(0, 1)
    total = digit.sum()
    cy = float((digit.sum(1) * torch.arange(h)).sum() / total)
    cx = float((digit.sum(0) * torch.arange(w)).sum() / total)
    top = min(max(round((SIZE - 1) / 2 - cy), 0), SIZE - h)
    left = min(max(round((SIZE - 1) / 2 - cx), 0), SIZE - w)
    canvas = torch.zeros(SIZE, SIZE)
    canvas[top: top + h, left: left + w] = digit
    return canvas


def load_image(path: Path) -> Tensor:
    """An image file as a (28, 28) MNIST-style digit; raises ValueError naming what is wrong."""
    if not path.is_file():
        raise ValueError("no such file")
    try:
        with Image.open(path) as image:
            pixels = torch.frombuffer(bytearray(image.convert("L").tobytes()), dtype=torch.uint8)
            gray = pixels.view(image.height, image.width).float() / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"not a readable image ({type(exc).__name__})") from None
    return mnistify(gray)


def read_kaggle_csv(path: Path) -> tuple[Tensor, Tensor | None]:
    """Kaggle's digit-recognizer rows (``pixel0``..``pixel783``, optional ``label`` first) as uint8 images."""
    problems, images, labels = [], [], []
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
            for line, row in enumerate(reader, start=2):
                try:
                    values = [int(v) for v in row]
                    if len(values) != expected or not all(0 <= v <= 255 for v in values[-784:]):
                        raise ValueError
                    if has_label and not 0 <= values[0] <= 9:
                        raise ValueError
                except ValueError:
                    problems.append(f"{path} line {line}: expected {expected} integers"
                                    f"{' (a label 0-9, then' if has_label else ' ('} pixels 0-255), got {len(row)} fields")
                    continue
                images.append(values[-784:])
                if has_label:
                    labels.append(values[0])
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionInputError(f"{path}: cannot be read ({type(exc).__name__})") from None
    if problems:
        raise PredictionInputError("\n".join(problems))
    if not images:
        raise PredictionInputError(f"{path}: no rows after the header")
    pixels = torch.tensor(images, dtype=torch.uint8).view(-1, SIZE, SIZE)
    return pixels, (torch.tensor(labels) if labels else None)


def classify(model: nn.Module, digits: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """Predicted digits and their softmax probabilities for (N, 28, 28) images in [0, 1]."""
    device = next(model.parameters()).device
    batches = ((normalize(chunk).to(device), None) for chunk in digits.split(batch_size))
    results = [logits.softmax(1).max(1) for _, logits, _ in inference(model, batches)]
    return torch.cat([d.cpu() for _, d in results]), torch.cat([p.cpu() for p, _ in results])


def predict_images(model: nn.Module, paths: list[Path]) -> list[Prediction]:
    """Every image, or one error listing each unreadable one."""
    digits, problems = [], []
    for path in paths:
        try:
            digits.append(load_image(path))
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        raise PredictionInputError("\n".join(problems))
    predicted, probability = classify(model, torch.stack(digits))
    return [Prediction(str(p), int(d), float(q)) for p, d, q in zip(paths, predicted, probability)]


def submission_csv(predicted: Tensor) -> str:
    """Kaggle's submission format: ``ImageId,Label`` with 1-based ids."""
    return "ImageId,Label\n" + "".join(f"{i},{int(d)}\n" for i, d in enumerate(predicted.tolist(), start=1))


def predict_saved(model_key: str, out_dir: str | None, device: str, images: list[str] | None,
                  csv_file: str | None) -> None:
    """``--predict`` / ``--predict-csv``: the saved model on new digits, nothing trained."""
    strategy = get_strategy(model_key)
    model = load_trained(strategy.key, out_dir, device)
    if images:
        for p in predict_images(model, [Path(x) for x in images]):
            print(f"{p.source}: {p.digit} ({100 * p.probability:.1f}%)")
    if csv_file:
        pixels, labels = read_kaggle_csv(Path(csv_file))
        digits, _ = classify(model, pixels.float() / 255.0)
        path = ArtifactPaths(strategy.stem, out_dir).submission
        atomic_write_text(path, submission_csv(digits))
        scored = "" if labels is None else f"; accuracy on its labels {100 * float((digits == labels).float().mean()):.2f}%"
        print(f"wrote {path} ({len(digits)} rows){scored}")
