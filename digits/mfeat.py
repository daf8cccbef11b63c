"""MFEAT's pixel digits (a development set: 2,000 digits from Dutch utility maps, ``../shared/data/MFEAT``).

Each row is 240 counts 0-6, 16 rows by 15 columns of 2x3 blocks of a 30x48 binary image, the digit stretched to
fill it (a 1 becomes a wide block), then the class. Read as they are, stretched, they are what a digit set that
normalises each axis (SEMEION, USPS) hands a reader: the development stand-in for such scans.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from digits.prepare import mnistify

FILE = "MFEAT/mfeat-pix.csv"
ROWS, COLUMNS, BLOCK = 16, 15, 6  # the grid, and the pixels a block holds


class MfeatError(Exception):
    """The file cannot be read or is not MFEAT's; the message names it."""


def load(root: Path | str) -> tuple[Tensor, Tensor]:
    """Every MFEAT digit prepared as ``--predict`` prepares an image, (N, 28, 28) in [0, 1], and the labels."""
    path = Path(root) / FILE
    try:
        lines = [line for line in path.read_text().split("\n")[1:] if line.strip()]  # the first line: a header
        values = torch.tensor([[int(v) for v in line.split(",")] for line in lines])
    except OSError as exc:
        raise MfeatError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError:
        raise MfeatError(f"{path}: not MFEAT's file (each row: {ROWS * COLUMNS} integers, then the class)") from None
    if values.ndim != 2 or values.shape[1] != ROWS * COLUMNS + 1:
        raise MfeatError(f"{path}: not MFEAT's file (each row: {ROWS * COLUMNS} integers, then the class)")
    cover = values[:, :-1].float().div(BLOCK).view(-1, 1, ROWS, COLUMNS)
    pages = F.interpolate(cover, size=(3 * ROWS, 2 * COLUMNS), mode="bilinear", align_corners=False)[:, 0]
    return torch.stack([mnistify(1 - page) for page in pages]), values[:, -1]  # dark ink on white paper
