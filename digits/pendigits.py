"""PENDIGITS (a development set: 44 writers' digits on a tablet, ``../shared/data/PENDIGITS``), read once for all.

Each row is eight points resampled along the pen's path in a 0-100 box, y pointing up, then the class. The digit
detector trains on the even rows (``training.detector``); the odd rows are left for measuring (its record, the
browser benchmark).
"""
from __future__ import annotations

from pathlib import Path

FILE = "PENDIGITS/pendigits.csv"
POINTS = 8


class PendigitsError(Exception):
    """The file cannot be read or is not PENDIGITS'; the message names it."""


def paths(root: Path | str, rows: slice = slice(None)) -> list[tuple[list[tuple[int, int]], int]]:
    """The pen paths of the rows ``rows`` picks: eight (x, y) points each, y downwards (as on a page or a canvas,
    in the same 0-100 box), and the digit."""
    path = Path(root) / FILE
    try:
        lines = [line.split(",") for line in path.read_text().split("\n") if line.strip()]
        return [([(int(r[2 * i]), 100 - int(r[2 * i + 1])) for i in range(POINTS)], int(r[2 * POINTS])) for r in lines][rows]
    except OSError as exc:
        raise PendigitsError(f"{path}: cannot be read ({exc.strerror})") from None
    except (ValueError, IndexError):
        raise PendigitsError(f"{path}: not PENDIGITS' file (each row: 16 integers, then the class)") from None
