"""Numbers written in a row, made from MNIST test digits, and how often a model reads them exactly.

Each number is ``length`` test digits cropped to their ink, each scaled and raised or lowered at random, set
side by side with the gaps of its kind, dark on light paper at twice MNIST's scale (as a scan or a photo
would be), then read as ``--predict`` reads any image: ``digits.prepare.digits_of`` splits and prepares
it, every piece is classified. The test set is read once, to report; nothing is chosen on it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analysis.gate import judge, reader
from digits.prepare import digits_of

# gap between neighbours' ink in pixels at MNIST's scale (a digit's ink is about 20 pixels tall); negative: overlap
KINDS = {
    "gaps": (3, 10),  # written apart, as on a form
    "tight": (1, 2),  # close, not touching
    "touching": (-2, 0),  # abutting or overlapping columns: strokes touch or nearly
}
SCALE = (0.8, 1.2)  # each digit's size against the others
BASELINE = 3  # each digit's vertical offset, pixels either way
MARGIN = 8
UPSCALE = 2


@dataclass(frozen=True)
class NumberScore:
    kind: str
    length: int
    numbers: int
    exact: float  # % read exactly (every digit, and no digit more or fewer)
    count_right: float  # % split into the right number of digits
    digit_accuracy: float  # % of digits read right, among numbers split into the right count

    def to_dict(self) -> dict:
        return asdict(self)


def _ink(digit: Tensor, scale: float) -> Tensor:
    """A (28, 28) uint8 test digit cropped to its ink, scaled, in [0, 1]."""
    x = digit.float() / 255.0
    rows, cols = (x > 0).any(1).nonzero().flatten(), (x > 0).any(0).nonzero().flatten()
    crop = x[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    return F.interpolate(crop[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)


def compose(digits: Tensor, gap: tuple[int, int], gen: torch.Generator) -> Tensor:
    """(N, 28, 28) uint8 test digits as one number: a (H, W) image in [0, 1], dark ink on light paper."""
    inks = [_ink(d, float(torch.empty(1).uniform_(*SCALE, generator=gen))) for d in digits]
    offsets = torch.randint(-BASELINE, BASELINE + 1, (len(inks),), generator=gen).tolist()
    gaps = torch.randint(gap[0], gap[1] + 1, (len(inks),), generator=gen).tolist()
    tallest = max(i.shape[0] for i in inks)
    height = tallest + 2 * BASELINE + 2 * MARGIN
    width = sum(i.shape[1] for i in inks) + sum(gaps[:-1]) + 2 * MARGIN
    page = torch.zeros(height, max(width, 2 * MARGIN + 1))
    x = MARGIN
    for ink, dy, g in zip(inks, offsets, gaps):
        top = MARGIN + BASELINE + (tallest - ink.shape[0]) + dy  # bottoms aligned, then moved up or down
        region = page[top: top + ink.shape[0], x: x + ink.shape[1]]
        region.copy_(torch.maximum(region, ink[: region.shape[0], : region.shape[1]]))
        x += ink.shape[1] + g
    big = F.interpolate(page[None, None], scale_factor=UPSCALE, mode="bilinear", align_corners=False)[0, 0]
    return 1.0 - big.clamp(0, 1)


def read(model: nn.Module, image: Tensor) -> str:
    """The digits a model reads in an image, as ``--predict`` prepares it; '' for an image with no ink, or one a
    piece of which fails the gate ``--predict`` applies (``analysis.gate``: the digit detector, then the model's
    threshold of "not a digit" carried by a calibrated model)."""
    try:
        pieces = digits_of(image, reader(model))
    except ValueError:
        return ""
    judged = judge(model, torch.stack([p for p, _ in pieces]))
    return "" if judged.rejection() is not None else "".join(str(int(d)) for d in judged.probabilities.argmax(1))


def score(model: nn.Module, images: Tensor, labels: Tensor, kind: str, length: int = 4, numbers: int = 500,
          seed: int = 0) -> NumberScore:
    """How often ``model`` reads ``numbers`` numbers of ``length`` test digits of ``kind`` exactly."""
    gen = torch.Generator().manual_seed(seed)
    exact = count = right = total = 0
    for _ in range(numbers):
        pick = torch.randint(0, len(images), (length,), generator=gen)
        truth = "".join(str(int(labels[i])) for i in pick)
        said = read(model, compose(images[pick], KINDS[kind], gen))
        exact += said == truth
        if len(said) == len(truth):
            count += 1
            right += sum(a == b for a, b in zip(said, truth))
            total += length
    return NumberScore(kind, length, numbers, round(100 * exact / numbers, 2), round(100 * count / numbers, 2),
                       round(100 * right / max(total, 1), 2))
