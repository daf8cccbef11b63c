"""Argument types and usage errors shared by ``main.py``'s flags (``cli.flags``) and the training and benchmark commands."""
from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Iterator


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


@contextlib.contextmanager
def plainly(parser: argparse.ArgumentParser, *errors: type[Exception]) -> Iterator[None]:
    """Within it, an exception of the kinds ``errors`` (bad input whose message names its file) ends the command as
    a wrong flag does: one line, exit 2, no traceback."""
    try:
        yield
    except errors as exc:
        parser.error(str(exc))
