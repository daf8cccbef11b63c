"""A written number split into its digits: the ink of a cleaned image (``prepare.clean``) cut into one piece per digit.

The pieces are the ink's 8-connected components, those above one another merged into one column (a 5's
detached bar, a 4 drawn in two strokes), specks and marks much lower than the digits left out. A column much
wider than a digit is tall is taken for touching digits and cut where the ink is thinnest near the cuts an
even split would make; such a cut is marked uncertain. Where geometry cannot tell (a wide 0, or two touching
ones), the reader's own confidence settles it (``judge``); ink whose pieces would all read as 1s stays whole
(``digits.prepare``: a letter's strokes). One piece is one digit, read as before.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from torch import Tensor

SPECK = 0.04  # a component with less ink than this share of the largest one's is a speck (or a dot), not a digit
OVERLAP = 0.5  # components whose columns overlap by this share of the narrower one are one digit's strokes, ...
STACKED, NEAR = 0.5, 0.1  # ... as are two one above the other (rows overlapping by less than this share of the
# shorter one's height) whose columns overlap or nearly (a gap under this share of the taller one's height):
# digits in a row stand side by side, the pieces of a broken stroke one above the other
FRAGMENT = 0.75  # a column shorter than this share of its neighbour's height, a hairline away, may be its fragment
LOW = 0.4  # a column lower than this share of the tallest one is a mark (a hyphen, a comma), not a digit
TOUCHING = 0.95  # a column this many times wider than it is tall may hold touching digits (a reader decides) ...
CERTAINLY_TOUCHING = 2.0  # ... and this many times does
DIGIT_ASPECT = 0.7  # a digit's usual width for its height, to count the digits in a touching run ...
WIDEST, NARROWEST = 1.1, 0.45  # ... and the widest and narrowest a reader is asked to choose between
SEARCH = 0.35  # a cut is looked for within this share of a digit's width around where an even split puts it
SURE = 0.99  # a column that may be one digit is cut only when the reader is at least this sure of every piece
MAX_DIGITS = 12


@dataclass(frozen=True)
class Piece:
    """One digit's ink: ``ink`` is the crop of the cleaned image at ``box`` (top, left, bottom, right; exclusive)."""

    ink: Tensor
    box: tuple[int, int, int, int]
    cut: bool = False  # cut out of touching ink: the split is uncertain


def pieces(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The 8-connected pieces of a (H, W) boolean mask: a label per pixel (0 off the mask, 1..count on it), and count."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return labels, int(count)


def _columns(mask: np.ndarray) -> list[list[int]]:
    """The ink's components as boxes (top, left, bottom, right, ink), merged into columns; specks dropped."""
    labels, count = pieces(mask)
    if count == 0:
        return []
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    boxes = [[s[0].start, s[1].start, s[0].stop, s[1].stop, int(n)]
             for s, n in zip(ndimage.find_objects(labels), sizes) if n >= SPECK * sizes.max()]
    boxes.sort(key=lambda b: b[1])
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap = min(a[3], b[3]) - max(a[1], b[1])  # negative: the gap between their columns
                beside = min(a[2], b[2]) - max(a[0], b[0])  # how far their rows overlap
                stacked = beside < STACKED * min(a[2] - a[0], b[2] - b[0]) and overlap > -NEAR * max(a[2] - a[0], b[2] - b[0])
                if overlap >= OVERLAP * min(a[3] - a[1], b[3] - b[1]) or stacked:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    tallest = max(b[2] - b[0] for b in boxes)
    return sorted((b for b in boxes if b[2] - b[0] >= LOW * tallest), key=lambda b: b[1])


def _cuts(profile: Tensor, count: int) -> list[int]:
    """Where to cut a run of ``count`` touching digits: near each even split, the column with the least ink."""
    width = len(profile)
    step = width / count
    cuts = []
    for k in range(1, count):
        lo, hi = int(k * step - SEARCH * step), int(k * step + SEARCH * step) + 1
        lo, hi = max(lo, (cuts[-1] + 1) if cuts else 1), min(hi, width - 1)
        cuts.append(lo + int(profile[lo:hi].argmin()) if hi > lo else int(k * step))
    return cuts


def _pieces(ink: Tensor, column: list[int], count: int) -> list[Piece]:
    """A column's ink cut into ``count`` pieces (1: whole), each cropped to its own rows."""
    top, left, bottom, right, _ = column
    edges = [left, *(left + c for c in _cuts(ink[top:bottom, left:right].sum(0), count)), right] if count > 1 \
        else [left, right]
    pieces = []
    for a, b in zip(edges, edges[1:]):
        rows = (ink[top:bottom, a:b] > 0).any(1).nonzero().flatten()
        if len(rows):
            t, u = top + int(rows[0]), top + int(rows[-1]) + 1
            pieces.append(Piece(ink[t:u, a:b], (t, a, u, b), cut=count > 1))
    return pieces


Judge = Callable[[list[list[Piece]]], list[float]]  # how well a reader reads each option's pieces (e.g. its lowest
# confidence among them): every option of a choice in one call, so a model scores them in one batch


def _rejoined(ink: Tensor, columns: list[list[int]], judge: Judge) -> list[list[int]]:
    """Neighbouring columns with a hairline between them (under ``NEAR`` of the taller one's height), one much shorter
    than the other (``FRAGMENT``), joined when the reader reads them better as one: a stroke cut by a printed
    line, or by a pen that skipped. Two digits written close stand about as tall as each other."""
    joined = [columns[0]] if columns else []
    for b in columns[1:]:
        a = joined[-1]
        heights = sorted((a[2] - a[0], b[2] - b[0]))
        if b[1] - a[3] < NEAR * heights[1] and heights[0] < FRAGMENT * heights[1]:
            union = [min(a[0], b[0]), a[1], max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
            joined_score, apart_score = judge([_pieces(ink, union, 1), _pieces(ink, a, 1) + _pieces(ink, b, 1)])
            if joined_score > apart_score:
                joined[-1] = union
                continue
        joined.append(b)
    return joined


def split(ink: Tensor, judge: Judge | None = None) -> list[Piece]:
    """The digits of a cleaned (H, W) image (light ink on exact black), left to right; [] when it holds no ink.

    A column wider than ``CERTAINLY_TOUCHING`` times its height holds touching digits; one wider than
    ``TOUCHING`` times may be a wide digit or touching ones, and ``judge`` (a reader's confidence in pieces)
    decides: it is cut, into the count the reader reads best, only when the reader is ``SURE`` of every piece
    and reads them better than the whole. Without a judge such a column stays whole; a number's columns a
    hairline apart are rejoined only with a judge (``_rejoined``)."""
    columns = _columns((ink > 0).numpy())
    if judge is not None:
        columns = _rejoined(ink, columns, judge)
    pieces: list[Piece] = []
    for column in columns:
        height, width = column[2] - column[0], column[3] - column[1]
        count = min(MAX_DIGITS, max(2, round(width / (DIGIT_ASPECT * height))))
        if width <= TOUCHING * height:
            chosen = _pieces(ink, column, 1)
        else:
            certain = width > CERTAINLY_TOUCHING * height
            fewest, most = max(2, int(width / (WIDEST * height))), max(2, math.ceil(width / (NARROWEST * height)))
            counts = [k for k in range(fewest, most + 1) if k <= MAX_DIGITS] + ([] if certain else [1])
            options = [_pieces(ink, column, k) for k in counts]
            options = [o for o, k in zip(options, counts) if len(o) == k] or [_pieces(ink, column, 1)]
            if judge is None:  # without a reader: the even split's count when certain, else whole
                chosen = next((o for o in options if len(o) == count), options[0]) if certain else _pieces(ink, column, 1)
            else:
                scores = judge(options)
                best = max(range(len(options)), key=scores.__getitem__)
                whole = next((i for i, o in enumerate(options) if len(o) == 1), None)
                if whole is not None and best != whole and scores[best] < SURE:  # a doubtful cut: keep it whole
                    best = whole
                chosen = options[best]
        pieces += chosen
    return pieces
