"""Digits of handwriting fonts, prepared as ``--predict`` prepares a scan: more hands than MNIST's writers.

MNIST's training digits come from about 540 writers of two American populations; a user's digits come
from anyone. Typefaces drawn to look handwritten carry other people's ways of writing digits, so the
committed file holds every Google Fonts "handwriting" family (the catalogue as the npm package
``google-fonts-complete`` 2.2.3 lists it) that Fontsource publishes with all ten digits: each digit of its
regular (or nearest) latin weight rendered dark on white and passed through ``prepare.mnistify``.
The families are split once, alphabetically, into training fonts and development fonts (every fourth),
so a recipe that learns from the first can be judged on hands it never saw without touching a test set.

``tools/build_fonts.py`` makes the file (how, in its docstring); this module only reads it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from core.artifacts import REPO_ROOT

PATH = REPO_ROOT / "assets" / "font_digits.safetensors"
DEVELOPMENT_EVERY = 4  # every fourth family, alphabetically, is kept out of training


class FontDigitsError(Exception):
    """The font digits file is missing or not what this module wrote."""


@dataclass(frozen=True)
class FontDigits:
    """Prepared digits, (fonts, 10, 28, 28) uint8, digit d of font f at [f, d]; the families' names."""
    images: Tensor
    families: list[str]

    def digits(self) -> tuple[Tensor, Tensor]:
        """All the digits as a batch (N, 28, 28) uint8 and their labels."""
        n = len(self.families)
        return self.images.reshape(n * 10, 28, 28), torch.arange(10).repeat(n)


def is_development(index: int) -> bool:
    """Whether the family at ``index`` (alphabetical order) is a development font."""
    return index % DEVELOPMENT_EVERY == DEVELOPMENT_EVERY - 1


@functools.lru_cache(maxsize=1)
def read(path: Path) -> tuple[Tensor, list[str]]:
    if not path.is_file():
        raise FontDigitsError(f"{path}: no font digits file (it is part of the repository: restore it with git)")
    try:
        images = load_file(path)["images"]
        with safe_open(path, "pt") as f:
            families = [font["family"] for font in json.loads((f.metadata() or {})["fonts"])]
    except Exception as e:  # a damaged file: say which, without a traceback
        raise FontDigitsError(f"{path}: not a font digits file ({e})") from None
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (10, 28, 28) or len(images) != len(families):
        raise FontDigitsError(f"{path}: expected uint8 (fonts, 10, 28, 28) for {len(families)} fonts, "
                              f"found {images.dtype} {tuple(images.shape)}")
    return images, families


def load(split: str, path: Path | None = None) -> FontDigits:
    """The ``"train"`` or ``"development"`` fonts' digits (``"all"``: every font), from ``path`` (default ``PATH``)."""
    if split not in ("train", "development", "all"):
        raise ValueError(f"split is train, development or all, not {split!r}")
    images, families = read(Path(path or PATH))
    keep = [i for i in range(len(families)) if split == "all" or (split == "development") == is_development(i)]
    return FontDigits(images[keep], [families[i] for i in keep])
