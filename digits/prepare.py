"""Any image into MNIST's form: the one preparation of digits, for a single image and for a batch.

``mnistify`` is LeCun et al.'s recipe for one photo or scan as people make them: transparency flattened,
light ink on black (inverted when the paper is light), the paper's uneven level (grey paper, shadows)
estimated and removed, sensor and JPEG noise thresholded away, the digit found wherever it is on the
page, its bounding box scaled to fit 20x20 pixels, then placed in a 28x28 field so that its centre of
mass sits at the centre. ``prepare_scan`` is its batched twin for small scans (SEMEION's and optdigits'
formats), on the device, with the same constants: the ``scan`` augmentations train on exactly what
``--predict`` makes of such a scan. ``as_scans`` hands small digits to ``mnistify`` one by one, as a
user's files would be. Nothing here knows a model.
"""
from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from digits import segment

BOX = 20
SIZE = 28
NOISE_SIGMAS = 4.0  # ink must stand this many noise deviations above the paper
MIN_CONTRAST = 0.08  # ... and this far (of full scale): flat paper with no digit stays blank
INK_OF_PEAK = 0.25  # ... and a quarter of the way to the darkest stroke: fainter is paper or smudge
FULL_INK_QUANTILE = 0.75  # the share of ink pixels below a stroke's core, which is brought to full ink
FRAME_GROUND = 0.6  # the share of the image's edge one shade must cover to be read as the ground
DARK_GROUND = 2 / 3  # otherwise: the share of the image a dark shade must cover to be read as the ground, not ink
WORK_SIDE = 64  # the paper's level is estimated at this resolution (it varies slowly)
LINE_SPAN = 0.9  # a band of rows (columns) inked along this share of the image and no thicker than
LINE_WIDTH = 1 / 40  # this share of its height (width) is a printed line (see without_printed_lines)
SURROUNDING_WIDTH = 3.0  # ink at the image's edge this many times wider than the digit's strokes is not the digit
MAX_SHADOW = 0.75  # a paper level that rises further than this towards the ink's peak has followed the ink


def _filter(x: Tensor, size: int, largest: bool) -> Tensor:
    """Grey-level dilation (``largest``) or erosion of a (H, W) image with a square of odd ``size``: along the rows,
    then along the columns, which is the same extreme over the square in 2 x size steps a pixel instead of size**2."""
    sign = 1.0 if largest else -1.0
    rows = F.max_pool2d(sign * x[None, None], (1, size), stride=1, padding=(0, size // 2))
    return sign * F.max_pool2d(rows, (size, 1), stride=1, padding=(size // 2, 0))[0, 0]


def paper_level(ink: Tensor) -> Tensor:
    """The background under light-on-dark ``ink``: a grey opening wider than any stroke, computed at low
    resolution (the paper's level varies slowly), smoothed and brought back to full size. Where the strokes
    are as wide as the opening (a digit cropped tight, stretched to fill its box), what it keeps is ink,
    not shadow: a level that climbs most of the way to the ink's peak is taken as flat paper instead."""
    h, w = ink.shape
    factor = max(1, min(h, w) // WORK_SIDE)
    small = F.avg_pool2d(ink[None, None], factor, ceil_mode=True)[0, 0] if factor > 1 else ink
    size = max(5, min(small.shape) // 3) | 1
    opened = _filter(_filter(small, size, largest=False), size, largest=True)
    smooth = F.avg_pool2d(opened[None, None], 3, stride=1, padding=1, count_include_pad=False)
    level = F.interpolate(smooth, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    base, peak = float(level.min()), float(F.avg_pool2d(ink[None, None], 3, stride=1, padding=1).max())
    if float(level.max()) - base > MAX_SHADOW * (peak - base):  # strokes wider than the opening: a tight crop
        return torch.full_like(ink, base)
    return level


def paper_noise(raw: Tensor, peak: float, bins: int = 64) -> tuple[float, float]:
    """The paper's level and noise in a (H, W) image of ink above its paper (``raw``, not clipped at zero).

    The level is the most common value below half the ``peak``; the noise is read on the values below that
    level alone: ink only adds to the paper, so that side of its spread holds no ink, however much of the
    image the ink covers (a digit cropped tight, its strokes grey at the edges, can cover most of it).
    """
    low = raw[raw < 0.5 * peak]
    if not low.numel():
        return 0.0, 0.0
    lo, hi = float(low.min()), 0.5 * peak
    width = max((hi - lo) / bins, 1e-6)
    k = int(torch.histc(low, bins=bins, min=lo, max=lo + bins * width).argmax())
    near = low[(low >= lo + (k - 1) * width) & (low < lo + (k + 2) * width)]  # the fullest bin and its two neighbours
    level = float(near.median())
    below = low[low <= level]
    return level, 1.4826 * float((level - below).median())


def dark_ink(gray: Tensor) -> bool:
    """Whether a (H, W) image in [0, 1] holds dark ink on light paper, or light ink on a dark ground.

    The ground is the shade of most of the image's edge: a digit touches its edge at a few places even when
    cropped tight, and its strokes, grey at their edges, can then cover most of the image. When the edge is
    split (a digit stretched to fill its box, as SEMEION stores them, runs along it), ink is taken to be
    dark unless the dark shade covers two thirds of the image.
    """
    smooth = F.avg_pool2d(gray[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
    darkest, lightest = float(smooth.min()), float(smooth.max())
    edge = torch.cat([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    light_edge = float((edge > (darkest + lightest) / 2).float().mean())
    if light_edge >= FRAME_GROUND or light_edge <= 1 - FRAME_GROUND:
        return light_edge >= FRAME_GROUND
    dark = smooth < (darkest + lightest) / 2
    pieces = (_components(dark), _components(~dark))
    for is_dark, mask, count, other in ((True, dark, pieces[0], pieces[1]), (False, ~dark, pieces[1], pieces[0])):
        if count == 1 and other >= 3 and mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any():
            return is_dark  # a digit stretched to its box: one piece reaching all four sides, the ground in corners and holes
    values = gray.flatten()  # kthvalue: older torch's quantile refuses photos above 16M pixels
    shade = float(values.kthvalue(max(1, math.ceil(DARK_GROUND * values.numel()))).values)
    return shade - darkest > lightest - shade  # less than two thirds of the image is dark: dark ink on paper


def _pooled(mask: Tensor, side: int) -> tuple[Tensor, int]:
    """A (H, W) boolean mask max-pooled to at most ``side`` pixels a side, and the pooling factor: connectivity
    is judged at that coarseness whatever the photo's size (ink a pooled cell apart counts as joined)."""
    factor = max(1, math.ceil(max(mask.shape) / side))
    return F.max_pool2d(mask.float()[None, None], factor, ceil_mode=True)[0, 0].bool(), factor


def _pieces(mask: Tensor) -> Tensor:
    """A label per pixel of a (H, W) boolean mask: its 8-connected piece, numbered from 1 (0 off the mask)."""
    labels, _ = segment.pieces(mask.cpu().numpy())
    return torch.from_numpy(labels).long().to(mask.device)


def _components(mask: Tensor, side: int = 64) -> int:
    """How many 8-connected pieces of at least 1/200 of the image a (H, W) boolean mask has, counted on the mask
    pooled to ``side`` pixels."""
    small, _ = _pooled(mask, side)
    sizes = torch.bincount(_pieces(small)[small])[1:]  # the pixels of each piece
    return int((sizes >= max(2, small.numel() // 200)).sum())  # specks (noise) are not pieces


MNIST_SIDES = (19, 20)  # an MNIST digit's box: its longer side scaled to 20 pixels (19 where the edge is faint)
MNIST_CENTRE = (12.95, 14.55)  # ... its centre of mass in this span on both axes: MNIST's digits lie at 13.5-14.5,
# the digits ``centre`` makes at 13-14 (its centre is (SIZE - 1) / 2), so a prepared digit is not prepared twice


def in_mnist_form(gray: Tensor) -> Tensor | None:
    """``gray`` as light ink on exact black when it already is a digit in MNIST's form, else None: 28x28, the
    ground exact black (or exact white: the same digit inverted) over at least half the field, the ink's box 19-20
    pixels on its longer side and its centre of mass at the field's centre, as every one of MNIST's 70,000 digits
    is (and every digit ``centre`` makes). Such an image is read as it is: preparing it again would resample a
    digit that needs none (an MNIST test digit saved as a PNG is read exactly as the data set's own loader gives
    it, and a prepared digit is prepared once)."""
    if tuple(gray.shape) != (SIZE, SIZE):
        return None
    for ink in (gray, 1.0 - gray):
        if float((ink == 0).float().mean()) < 0.5 or float(ink.max()) < 0.5:
            continue
        lit = ink > 0
        rows, cols = lit.any(1).nonzero().flatten(), lit.any(0).nonzero().flatten()
        if max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) + 1 not in MNIST_SIDES:
            return None
        total, at = ink.sum(), torch.arange(SIZE, dtype=ink.dtype)
        cy, cx = float((ink.sum(1) * at).sum() / total), float((ink.sum(0) * at).sum() / total)
        low, high = MNIST_CENTRE
        return ink if low <= cy <= high and low <= cx <= high else None
    return None


def clean(gray: Tensor) -> Tensor:
    """A (H, W) photo in [0, 1], any polarity, as light ink on exact black: paper and noise removed.

    Dark ink on light paper is divided by the paper's level (light falls on ink and paper alike, so a
    shadow scales both); light ink on a dark ground has the ground's level subtracted (``dark_ink`` tells
    which). Then what does not stand clear of the paper's noise is paper. A digit already in MNIST's form
    (``in_mnist_form``) is clean as it is.
    """
    as_is = in_mnist_form(gray)
    if as_is is not None:
        return as_is
    if dark_ink(gray):
        raw = 1.0 - gray / (1.0 - paper_level(1.0 - gray)).clamp(min=1e-3)
    else:
        raw = gray - paper_level(gray)
    ink = raw.clamp(min=0)
    peak = float(F.avg_pool2d(ink[None, None], 3, stride=1, padding=1)[0, 0].max())  # a stroke, not a speck
    centre, sigma = paper_noise(raw, peak)
    threshold = centre + max(NOISE_SIGMAS * sigma, MIN_CONTRAST, INK_OF_PEAK * peak)
    if peak <= threshold:
        return torch.zeros_like(ink)
    ink = torch.where(ink > threshold, ink, torch.zeros_like(ink))
    support = F.avg_pool2d((ink > 0).float()[None, None], 3, stride=1, padding=1)[0, 0]
    ink = torch.where(support >= 3 / 9, ink, torch.zeros_like(ink))  # isolated specks are noise
    ink = without_printed_lines(ink)
    ink = without_surroundings(ink)
    strokes = ink[ink > 0]
    full = float(strokes.quantile(FULL_INK_QUANTILE)) if strokes.numel() else 1.0  # a stroke's core is full ink, as in MNIST
    return (ink / full).clamp(0, 1)


def _bands(line: Tensor) -> list[tuple[int, int]]:
    """The runs of consecutive True values in a 1-D mask, as (first, last) pairs."""
    edges = torch.diff(F.pad(line.int(), (1, 1))).nonzero().flatten().tolist()
    return [(first, last - 1) for first, last in zip(edges[::2], edges[1::2])]


def without_printed_lines(ink: Tensor) -> Tensor:
    """``ink`` without ruled or squared paper's printed lines: thin bands of rows (columns) inked along
    ``LINE_SPAN`` of the image, cleared when at least one of them has no ink just beside it (other than the
    other direction's lines): a line in the margin, where no digit's stroke is. A digit alone does not make
    one — its bars are joined to strokes above or below, or lie at the image's edge, or are thicker than a
    printed line — so a digit cropped tight keeps its bars."""
    inked = ink > 0
    lines = []
    for dim in (0, 1):  # 0: horizontal lines, along rows
        full = inked.float().mean(1 - dim) >= LINE_SPAN
        thin = [(a, b) for a, b in _bands(full) if b - a + 1 <= LINE_WIDTH * ink.shape[dim]]
        mask = torch.zeros_like(full)
        for a, b in thin:
            mask[a: b + 1] = True
        lines.append((thin, mask))
    kept = ink.clone()
    for dim in (0, 1):
        other = lines[1 - dim][1]
        beside = (inked & (~other[None, :] if dim == 0 else ~other[:, None])).any(1 - dim)
        thin = lines[dim][0]
        if any(a > 0 and b < len(beside) - 1 and not beside[a - 1] and not beside[b + 1] for a, b in thin):
            for a, b in thin:
                kept.narrow(dim, a, b - a + 1).zero_()
    return kept


def reaching_the_edge(mask: Tensor, side: int = 128) -> Tensor:
    """The part of a (H, W) boolean ``mask`` connected (8-neighbours) to the image's edge, traced on the mask
    pooled to at most ``side`` pixels and brought back to full size: ink within a pooled cell of what reaches
    the edge counts as reaching it."""
    small, factor = _pooled(mask, side)
    edge = torch.zeros_like(small)
    edge[0], edge[-1], edge[:, 0], edge[:, -1] = True, True, True, True
    labels = _pieces(small)
    reached = torch.isin(labels, labels[small & edge]) & small  # the pieces with a pixel on the edge
    h, w = mask.shape
    return reached.repeat_interleave(factor, 0).repeat_interleave(factor, 1)[:h, :w] & mask


def without_surroundings(ink: Tensor) -> Tensor:
    """``ink`` without what surrounds the paper in a photo (the desk along its edges): ink connected to the
    image's edge, cleared when it stays out of the image's middle and its strokes are at least
    ``SURROUNDING_WIDTH`` times as wide as those of the ink that does not reach the edge — a digit in the
    middle of its sheet. A digit cropped tight reaches the middle with its ink and is left as it is, as is
    a part of a digit that touches the edge with the digit's own pen."""
    inked = ink > 0
    outer = reaching_the_edge(inked)
    inner = inked & ~outer
    if not outer.any() or not inner.any():
        return ink
    h, w = ink.shape
    if outer[h // 4: h - h // 4, w // 4: w - w // 4].any():  # it reaches the middle of the image: a digit's stroke
        return ink
    widths = pen_width(torch.stack([outer, inner]).float())
    return torch.where(outer, torch.zeros_like(ink), ink) if widths[0] >= SURROUNDING_WIDTH * widths[1] else ink


def ink_box(image: Tensor, ink: Tensor) -> Tensor:
    """The part of a (H, W) ``image`` inside the bounding box of its ``ink`` mask (which must hold some ink)."""
    rows, cols = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
    return image[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


class BlankImage(ValueError):
    """The preparation found no ink: an empty page, or paper whose marks do not stand out from its noise."""


NO_INK = "no digit found (no ink stands out: a blank page, or only noise)"  # noise and texture are cleaned away as paper


def mnistify(gray: Tensor) -> Tensor:
    """A (H, W) float image in [0, 1], any polarity, to a (28, 28) MNIST-style digit in [0, 1]."""
    ink = clean(gray)
    if not (ink > 0).any():
        raise BlankImage(NO_INK)
    return centre(ink)


def digits_of(gray: Tensor, read: Callable[[Tensor], Tensor] | None = None) -> list[tuple[Tensor, bool]]:
    """A (H, W) image of one digit or of a number written in a row, as one (28, 28) digit per digit, left to right,
    each with whether its split from a touching neighbour is uncertain (``digits.segment``). One digit is exactly
    ``mnistify``'s; raises ValueError when the image holds no ink. ``read``: a reader's probabilities (N, 10) for
    (N, 28, 28) digits, which settle whether a wide piece of ink is one digit or several touching ones."""
    return digits_in(clean(gray), read)


def digits_in(ink: Tensor, read: Callable[[Tensor], Tensor] | None = None) -> list[tuple[Tensor, bool]]:
    """``digits_of`` for ink already cleaned (``clean``): several readers of one image clean it once."""
    if not (ink > 0).any():
        raise BlankImage(NO_INK)
    if in_mnist_form(ink) is not None:  # one digit, in MNIST's form already
        return [(ink, False)]
    rate = None if read is None else functools.partial(_lowest_confidence, read)
    pieces = segment.split(ink, rate)
    if len(pieces) <= 1:
        return [(centre(ink), False)]
    return [(centre(piece.ink), piece.cut) for piece in pieces]


def _lowest_confidence(read: Callable[[Tensor], Tensor], options: list[list[segment.Piece]]) -> list[float]:
    """For each option (pieces of ink), the reader's lowest confidence among its pieces, all read in one batch; 0
    for ink cut into ones only. Ones are narrow: a run of touching ones as wide as ink that might be one character
    would be three or more ones written touching, which people rarely do, while the strokes of a letter (N, W, U,
    v) read as ones when cut apart."""
    probabilities = read(torch.stack([centre(p.ink) for option in options for p in option]))
    confidence, digit = probabilities.max(1)
    lowest, at = [], 0
    for option in options:
        ones = len(option) > 1 and all(p.cut for p in option) and bool((digit[at: at + len(option)] == 1).all())
        lowest.append(0.0 if ones else float(confidence[at: at + len(option)].min()))
        at += len(option)
    return lowest


def centre(ink: Tensor) -> Tensor:
    """Cleaned ink (light on exact black, some of it lit) as MNIST draws a digit: its box scaled to fit 20x20,
    then placed by its centre of mass in a 28x28 field; a digit in that form already is kept as it is."""
    if in_mnist_form(ink) is not None:
        return ink
    crop = ink_box(ink, ink > 0)
    scale = BOX / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    digit = F.interpolate(crop[None, None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    digit = (digit / digit.max()).clamp(0, 1)  # a thin pen, scaled down, still reaches full ink
    total = digit.sum()
    cy = float((digit.sum(1) * torch.arange(h)).sum() / total)
    cx = float((digit.sum(0) * torch.arange(w)).sum() / total)
    top = min(max(round((SIZE - 1) / 2 - cy), 0), SIZE - h)
    left = min(max(round((SIZE - 1) / 2 - cx), 0), SIZE - w)
    canvas = torch.zeros(SIZE, SIZE)
    canvas[top: top + h, left: left + w] = digit
    return canvas


def pen_width(digits: Tensor) -> Tensor:
    """The mean stroke width of each (..., H, W) digit in pixels: twice its ink over its outline's length (the
    sum of absolute differences between neighbours), exact for a long stroke of any grey profile along an axis."""
    outline = (digits[..., 1:, :] - digits[..., :-1, :]).abs().sum((-2, -1)) \
        + (digits[..., :, 1:] - digits[..., :, :-1]).abs().sum((-2, -1))
    return 2 * digits.sum((-2, -1)) / outline.clamp(min=1e-6)


def flatten_alpha(image: Image.Image) -> Tensor:
    """Grey levels in [0, 1]; transparent parts become paper that contrasts with the opaque ink."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return _pixels(image.convert("L"))
    gray, alpha = (_pixels(band) for band in image.convert("LA").split())
    if float(alpha.min()) == 1.0:
        return gray
    ink_level = float((gray * alpha).sum() / alpha.sum().clamp(min=1e-6))
    paper = 1.0 if ink_level < 0.5 else 0.0
    return gray * alpha + paper * (1 - alpha)


def _pixels(band: Image.Image) -> Tensor:
    data = torch.frombuffer(bytearray(band.tobytes()), dtype=torch.uint8)
    return data.view(band.height, band.width).float() / 255.0


def read_gray(path: Path) -> Tensor:
    """An image file as (H, W) grey levels in [0, 1], transparency flattened; raises ValueError naming what is wrong."""
    if path.is_dir():
        raise ValueError("is a directory, not an image")
    if not path.exists():
        raise ValueError("a symbolic link that leads to no file (its target is missing, or links back to itself)"
                         if path.is_symlink() else "no such file")
    if not path.is_file():
        raise ValueError("not a regular file")
    return _decode(path, None)  # a local file: Pillow's own decompression-bomb limit


MAX_PIXELS = 64_000_000  # a 50-megapixel phone photo passes; a larger upload is refused before it is decoded


def decode_gray(data: bytes, max_pixels: int = MAX_PIXELS) -> Tensor:
    """Image bytes (an upload) as (H, W) grey levels in [0, 1]; raises ValueError naming what is wrong. An image of
    more than ``max_pixels`` is refused from its header, before its pixels are decoded (a decompression bomb)."""
    return _decode(io.BytesIO(data), max_pixels)


class _TooLarge(Exception):
    pass


def _decode(source: Path | io.BytesIO, max_pixels: int | None) -> Tensor:
    try:
        with Image.open(source) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise _TooLarge(f"too large an image ({image.width}x{image.height} pixels; at most {max_pixels:,})")
            image.load()
            gray = flatten_alpha(image)
    except _TooLarge as exc:
        raise ValueError(str(exc)) from None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or f"not a readable image ({type(exc).__name__})"
        raise ValueError(reason) from None
    return gray


# ---------------------------------------------------------------- the batched twin, for small scans

SCAN_SIDE = 16  # SEMEION's cells across
SCAN_PIXELS = 128  # a scan is handed to --predict as a 128x128 image (``as_scans``)
BITMAP_SIDE, BLOCK = 32, 4  # optdigits: a 32x32 binary bitmap counted in 4x4 blocks, 8x8 cells of 17 levels


def _area_rows(first: Tensor, length: Tensor, size: int, field: int, count: Tensor | None = None) -> Tensor:
    """(N, field, size) matrices averaging each image's rows [first, first + length) into ``count`` rows
    (all ``field`` of them by default) centred in the field, with adaptive average pooling's windows
    (``F.interpolate(mode="area")``): output row i averages input rows floor(i * length / count) to
    ceil((i + 1) * length / count) - 1 of the crop. Rows outside the ``count`` are zero."""
    count = torch.full_like(first, field) if count is None else count
    k = torch.arange(field, device=first.device).view(1, field, 1) - ((field - count) // 2).view(-1, 1, 1)
    length, count = length.clamp(min=1).view(-1, 1, 1), count.clamp(min=1).view(-1, 1, 1)
    start = first.view(-1, 1, 1) + torch.div(k * length, count, rounding_mode="floor")
    end = first.view(-1, 1, 1) + torch.div((k + 1) * length + count - 1, count, rounding_mode="floor")
    j = torch.arange(size, device=first.device).view(1, 1, size)
    window = ((j >= start) & (j < end) & (k >= 0) & (k < count)).float()
    return window / window.sum(-1, keepdim=True).clamp(min=1)


@functools.lru_cache(maxsize=8)
def _resize_table(side: int, device: torch.device) -> Tensor:
    """(side + 1, 21, 20, side): entry [n, L] maps n scan cells, each ``SCAN_PIXELS // side`` pixels wide, to
    L pixels the way ``mnistify`` resizes a crop (bilinear, antialiased), in its top-left corner;
    zeros elsewhere. The resize is separable and linear, so a whole scan is ``rows @ cells @ columns.T``."""
    upscale = SCAN_PIXELS // side
    table = torch.zeros(side + 1, BOX + 1, BOX, side)
    for n in range(1, side + 1):
        pixels = upscale * n
        nearest = torch.eye(n).repeat_interleave(upscale, dim=0)  # (pixels, n): nearest-neighbour
        for length in range(1, BOX + 1):
            resize = F.interpolate(torch.eye(pixels)[None, None], size=(length, pixels), mode="bilinear",
                                   antialias=True, align_corners=False)[0, 0]
            table[n, length, :length, :n] = resize @ nearest
    return table.to(device)


def _ink_extents(images: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    ink = images[:, 0] > 0.1
    return extent(ink.any(2)), extent(ink.any(1))


def binary_scan(images: Tensor, threshold: Tensor) -> Tensor:
    """(N, 1, 28, 28) digits as SEMEION stores digits, (N, 16, 16) in {0, 1}: each ink box (pixels above 0.1)
    stretched on both axes to 16x16 by area sampling, then thresholded per image. A blank image gives zeros."""
    (top, height), (left, width) = _ink_extents(images)
    side = images.shape[-1]
    rows, cols = _area_rows(top, height, side, SCAN_SIDE), _area_rows(left, width, side, SCAN_SIDE)
    area = rows @ images[:, 0] @ cols.transpose(1, 2)
    return ((area > threshold.view(-1, 1, 1)) & (height > 0).view(-1, 1, 1)).to(images.dtype)


def block_scan(images: Tensor, threshold: Tensor) -> Tensor:
    """(N, 1, 28, 28) digits as UCI's optdigits stores digits, (N, 8, 8) in sixteenths: each ink box scaled by
    its larger side to a 32x32 binary bitmap (aspect kept, centred; area sampling, thresholded per image),
    then the ink counted in 4x4 blocks. A blank image gives zeros."""
    (top, height), (left, width) = _ink_extents(images)
    longer = torch.maximum(height, width).clamp(min=1).double()
    side = images.shape[-1]

    def matrix(first: Tensor, length: Tensor) -> Tensor:
        count = torch.round(length.double() * (BITMAP_SIDE / longer)).long().clamp(1, BITMAP_SIDE)
        return _area_rows(first, length, side, BITMAP_SIDE, count)

    area = matrix(top, height) @ images[:, 0] @ matrix(left, width).transpose(1, 2)
    bitmap = ((area > threshold.view(-1, 1, 1)) & (height > 0).view(-1, 1, 1)).to(images.dtype)
    return F.avg_pool2d(bitmap[:, None], BLOCK)[:, 0]


def cleaned_scan(cells: Tensor) -> Tensor:
    """(N, S, S) scan cells (ink coverage) as ``clean`` leaves a scan on white paper: what is fainter
    than a quarter of the darkest cell (and than ``MIN_CONTRAST``) is paper, the rest divided by the 75th
    percentile of the ink and clipped (a stroke's core is full ink). Binary cells are kept as they are."""
    peak = cells.amax((1, 2), keepdim=True)
    ink = torch.where(cells > (INK_OF_PEAK * peak).clamp(min=MIN_CONTRAST), cells, torch.zeros_like(cells))
    values = torch.where(ink > 0, ink, torch.full_like(ink, float("nan"))).flatten(1)
    full = torch.nanquantile(values, FULL_INK_QUANTILE, dim=1).nan_to_num(1.0).view(-1, 1, 1)
    return (ink / full).clamp(0, 1)


def prepare_scan(cells: Tensor) -> Tensor:
    """(N, S, S) scans (S dividing 128: SEMEION's 16, optdigits' 8) to (N, 1, 28, 28) the way ``--predict``
    prepares each one handed in as a 128x128 image: cleaned (``cleaned_scan``), the ink box scaled to 20
    pixels by its larger side (bilinear, antialiased), brought to full ink, centre of mass at the centre.
    Blank scans stay blank."""
    n, side, device = len(cells), cells.shape[-1], cells.device
    upscale = SCAN_PIXELS // side
    cells = cleaned_scan(cells)
    ink = cells > 0
    (top, height), (left, width) = extent(ink.any(2)), extent(ink.any(1))
    longer = torch.maximum(height, width).clamp(min=1).double()

    def pixels(count: Tensor) -> Tensor:  # mnistify's round(crop * (BOX / max(crop))), in the same float64
        crop = (upscale * count).double()
        return torch.round(crop * (BOX / (upscale * longer))).long().clamp(1, BOX)

    out_h, out_w = pixels(height), pixels(width)
    table = _resize_table(side, device)
    shift = torch.arange(side, device=device)
    rows_in = (top.view(-1, 1) + shift).clamp(max=side - 1)  # the ink box moved to the top-left corner
    cols_in = (left.view(-1, 1) + shift).clamp(max=side - 1)
    moved = cells.gather(1, rows_in.view(n, side, 1).expand(n, side, side))
    moved = moved.gather(2, cols_in.view(n, 1, side).expand(n, side, side))
    digit = table[height, out_h] @ moved @ table[width, out_w].transpose(1, 2)  # (N, 20, 20)
    digit = (digit / digit.amax((1, 2), keepdim=True).clamp(min=1e-12)).clamp(0, 1)
    total = digit.sum((1, 2)).clamp(min=1e-12)
    index = torch.arange(BOX, device=device, dtype=digit.dtype)
    cy, cx = (digit.sum(2) * index).sum(1) / total, (digit.sum(1) * index).sum(1) / total
    first_row = torch.minimum(torch.round((SIZE - 1) / 2 - cy).clamp(min=0).long(), SIZE - out_h)
    first_col = torch.minimum(torch.round((SIZE - 1) / 2 - cx).clamp(min=0).long(), SIZE - out_w)
    place = torch.arange(SIZE, device=device).view(1, SIZE, 1)
    box = torch.arange(BOX, device=device).view(1, 1, BOX)
    put_rows = (place == first_row.view(-1, 1, 1) + box).to(digit.dtype)  # (N, 28, 20) one-hot placement
    put_cols = (place == first_col.view(-1, 1, 1) + box).to(digit.dtype)
    return (put_rows @ digit @ put_cols.transpose(1, 2)).unsqueeze(1)


def extent(mask: Tensor) -> tuple[Tensor, Tensor]:
    """First index and length of the hull of the True entries along the last axis of an (N, L) mask (length 0
    when there are none)."""
    index = torch.arange(mask.shape[-1], device=mask.device)
    first = torch.where(mask, index, mask.shape[-1]).amin(-1)
    last = torch.where(mask, index, -1).amax(-1)
    return first.clamp(max=mask.shape[-1] - 1), (last + 1 - first).clamp(min=0)


def as_scans(ink: Tensor) -> Tensor:
    """Each small digit (16x16, 8x8: ink coverage) as a user's scan (dark on white, 128x128 PNG) prepared as
    ``--predict`` prepares it; one it finds blank is a blank field."""
    return scans_as_read(ink)[0]


def scans_as_read(ink: Tensor) -> tuple[Tensor, Tensor]:
    """``as_scans``, and whether ``--predict`` finds each scan a bitmap stretched to its frame (``stretched_bitmap``)."""
    digits, stretched = [], []
    for image in ink:
        pixels = ((1 - image) * 255).round().byte().numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").resize((SCAN_PIXELS, SCAN_PIXELS), Image.Resampling.NEAREST).save(buffer, "PNG")
        with Image.open(io.BytesIO(buffer.getvalue())) as scan:
            cleaned = clean(flatten_alpha(scan))
        blank = not (cleaned > 0).any()  # --predict finds no digit in it: a blank field (a stroke too faint for the scan)
        digits.append(torch.zeros(SIZE, SIZE) if blank else centre(cleaned))
        stretched.append(not blank and stretched_bitmap(cleaned))
    return torch.stack(digits), torch.tensor(stretched, dtype=torch.bool)


ASPECTS = (1.0, 0.7, 0.45, 0.25)  # the widths, as shares of its height, at which a stretched bitmap is judged
FRAME_FILLED = 7 / 8  # ... whose ink spans this share of the image both ways (thresholding a stretched digit may
# leave its edge rows blank: the held-out MNIST writers stored as SEMEION stores digits leave one or two of 16)


def stretched_bitmap(ink: Tensor) -> bool:
    """Whether cleaned ``ink`` is a bitmap stretched to its frame: two levels only, ink and paper, its box spanning
    ``FRAME_FILLED`` of the image both ways. So SEMEION and sets like it store digits, each axis scaled to fill
    the frame: the digit's own width is lost (a 1 becomes a block, much like a filled rectangle), and the gate
    judges such ink at several widths (``aspect_views``) rather than at the one the format gave it."""
    if not (ink > 0).any() or not bool(((ink == 0) | (ink == 1)).all()):
        return False
    inked = ink > 0
    (_, height), (_, width) = extent(inked.any(1)[None]), extent(inked.any(0)[None])
    return int(height) >= FRAME_FILLED * ink.shape[0] and int(width) >= FRAME_FILLED * ink.shape[1]


def aspect_views(digits: Tensor) -> Tensor:
    """(len(ASPECTS), N, 28, 28): each (N, 28, 28) prepared digit with its ink box narrowed to each of ``ASPECTS``
    of its height (never widened; the first view, 1.0, is the digit as it is), placed as ``centre`` places a
    digit. A blank digit stays blank."""
    views = torch.zeros(len(ASPECTS), *digits.shape, dtype=digits.dtype)
    for i, digit in enumerate(digits):
        views[0, i] = digit
        if not (digit > 0).any():
            continue
        crop = ink_box(digit, digit > 0)
        height, width = crop.shape
        for a, aspect in enumerate(ASPECTS[1:], start=1):
            narrow = min(width, max(1, round(aspect * height)))
            resized = F.interpolate(crop[None, None], size=(height, narrow), mode="bilinear", antialias=True,
                                    align_corners=False)[0, 0]
            views[a, i] = centre(resized.clamp(0, 1))
    return views
