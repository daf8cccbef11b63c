"""Argument types shared by ``main.py``'s flags (``cli.flags``) and the training and benchmark commands."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number(kind: type, low: float, high: float = math.inf, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` (int or float) within [low, high] (open at either end when asked); any
    other text is a usage error that says why."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"{text} is outside {'(' if low_open else '['}{low:g}, {high:g}"
                                             f"{')' if high_open else ']'}")
        return value
    parse.__name__ = "integer" if kind is int else "number"
    return parse
