"""Augmentation strategies: how a training batch is varied, a registry like the models and schedulers.

Each strategy maps a float batch (N, 1, 28, 28) in [0, 1] and a generator to a batch of the same shape
and range, for the whole batch at once on its device (no per-image Python). Its random draws come only
from the generator, so a batch depends only on (seed, epoch). ``rotation`` is the design card's +-7 deg
(V1-V3's recipe); the others model how real handwriting varies: pen position and slant (``affine``),
pen width (``thickness``), the wobble of a hand (``elastic``), scanners (``blur-binarize``), forms
and datasets that normalise each axis to fill a box, as SEMEION and USPS do (``stretch``), coarse binary
scans (``coarse``), and all of them together (``handwriting``); ``scanned`` leaves half of each batch
to rotation alone, so the network keeps seeing MNIST as it is. ``scan`` makes SEMEION's format exactly as
the external evaluation hands it to ``--predict`` (a 16x16 binary scan of the stretched digit, prepared
by ``mnistify``), batched; ``rotation-scan`` and ``writers-scan`` mix it with MNIST as it is. ``fonts``
draws some of a batch's digits anew in handwriting fonts' hands (``font_digits``): the one strategy that
needs the batch's labels (``Augmentation.uses_labels``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from core.registry import Registry
from digits import font_digits, nondigits
from digits.prepare import binary_scan, block_scan, extent, prepare_scan

MAX_ROTATION_DEGREES = 7.0


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=gen, device=device).mul_(high - low).add_(low)


@functools.lru_cache(maxsize=16)
def _base_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``affine_grid``'s pixel centres with a column of ones, (1, height*width, 3), made once per size.

    ``affine_grid`` rebuilds this for every call, which took most of a CPU batch's augmentation time;
    the grid is then the same batched product ``affine_grid`` computes, bit for bit.
    """
    identity = torch.eye(2, 3, dtype=dtype, device=device).unsqueeze(0)
    centres = F.affine_grid(identity, [1, 1, height, width], align_corners=False).view(1, height * width, 2)
    return torch.cat([centres, torch.ones_like(centres[..., :1])], dim=-1)


def _warp(images: Tensor, theta: Tensor, mode: str) -> Tensor:
    n, _, height, width = images.shape
    grid = torch.matmul(_base_grid(height, width, theta.dtype, theta.device), theta.transpose(1, 2))
    return F.grid_sample(images, grid.view(n, height, width, 2), mode=mode, padding_mode="zeros", align_corners=False)


def rotate(images: Tensor, degrees: Tensor) -> Tensor:
    """Rotate each image by its own angle, counter-clockwise, nearest-neighbour, black fill: the same pixels
    as torchvision's ``RandomRotation`` (which defaults to nearest), for the whole batch at once."""
    rad = torch.deg2rad(degrees.to(images.dtype))
    cos, sin, zero = torch.cos(rad), torch.sin(rad), torch.zeros_like(rad)
    return _warp(images, torch.stack([cos, -sin, zero, sin, cos, zero], dim=1).view(-1, 2, 3), "nearest")


def random_angles(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """``n`` angles in degrees, uniform in [-7, 7] (the original ``RandomRotation((-7, 7))``)."""
    u = torch.rand(n, generator=generator, device=device)
    return u.mul_(2 * MAX_ROTATION_DEGREES).sub_(MAX_ROTATION_DEGREES)


def rotation(images: Tensor, gen: torch.Generator) -> Tensor:
    """Uniform angles in +-7 deg, nearest-neighbour: the design card's augmentation."""
    return rotate(images, random_angles(len(images), gen, images.device))


def affine(images: Tensor, gen: torch.Generator) -> Tensor:
    """Rotation +-10 deg, scale 0.85-1.15, shear +-12 deg, shift +-2 px; bilinear."""
    n, device = len(images), images.device
    angle = torch.deg2rad(_uniform(n, -10, 10, gen, device))
    scale = _uniform(n, 0.85, 1.15, gen, device)
    shear = torch.tan(torch.deg2rad(_uniform(n, -12, 12, gen, device)))
    shift = _uniform(2 * n, -2 / 14, 2 / 14, gen, device).view(n, 2)  # grid units: 14 px per unit on 28 px
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([cos, -sin + shear * cos, shift[:, 0], sin, cos + shear * sin, shift[:, 1]], 1).view(-1, 2, 3)
    return _warp(images, theta, "bilinear")


def _window(images: Tensor, before: int, after: int, dim: int, op: Callable[[Tensor, Tensor], Tensor],
            fill: float) -> Tensor:
    """``op`` (torch.maximum or torch.minimum) over each pixel's window [i - before, i + after] along ``dim``,
    ``fill`` outside the image. What max_pool2d with a stride of 1 computes, as a few element-wise passes:
    on a CPU those are several times faster than its kernel for thin windows on 28x28 images, and exact."""
    padded = F.pad(images, (before, after, 0, 0) if dim == -1 else (0, 0, before, after), value=fill)
    size = images.shape[dim]
    out = padded.narrow(dim, 0, size)
    for k in range(1, before + after + 1):
        out = op(out, padded.narrow(dim, k, size))
    return out


def dilate3x3(images: Tensor) -> Tensor:
    """Grey dilation: the maximum over each pixel's 3x3 neighbourhood (max_pool2d(images, 3, 1, padding=1))."""
    inf = float("inf")
    return _window(_window(images, 1, 1, -1, torch.maximum, -inf), 1, 1, -2, torch.maximum, -inf)


def erode2x2(images: Tensor) -> Tensor:
    """Grey erosion: the minimum over each pixel's 2x2 block to its right and below, the image's own pixels only."""
    inf = float("inf")
    return _window(_window(images, 0, 1, -1, torch.minimum, inf), 0, 1, -2, torch.minimum, inf)


def thickness(images: Tensor, gen: torch.Generator) -> Tensor:
    """Each image's strokes made thicker (grey dilation), thinner (grey erosion) or kept, a third each."""
    choice = torch.randint(0, 3, (len(images), 1, 1, 1), generator=gen, device=images.device)
    return torch.where(choice == 0, dilate3x3(images), torch.where(choice == 1, erode2x2(images), images))


def elastic(images: Tensor, gen: torch.Generator, strength: float = 0.06) -> Tensor:
    """A smooth random displacement field per image (4x4 control points, bicubic), bilinear sampling."""
    n, device = len(images), images.device
    coarse = torch.randn(n, 2, 4, 4, generator=gen, device=device).mul_(strength)
    field = F.interpolate(coarse, size=images.shape[-2:], mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    height, width = images.shape[-2:]
    centres = _base_grid(height, width, images.dtype, device)[..., :2].view(1, height, width, 2)  # affine_grid's, cached
    grid = centres + field
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def blur_binarize(images: Tensor, gen: torch.Generator) -> Tensor:
    """Each image blurred (Gaussian, sigma 0.5-1.0), binarised at a threshold 0.3-0.7, or kept, a third each."""
    n, device = len(images), images.device
    sigma = _uniform(n, 0.5, 1.0, gen, device)
    taps = torch.arange(-2, 3, device=device, dtype=images.dtype)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (N, 5): one separable kernel per image
    rows = F.conv2d(images.transpose(0, 1), kernel[:, None, None, :], padding=(0, 2), groups=n)
    blurred = F.conv2d(rows, kernel[:, None, :, None], padding=(2, 0), groups=n).transpose(0, 1)
    binary = (images > _uniform(n, 0.3, 0.7, gen, device).view(n, 1, 1, 1)).to(images.dtype)
    choice = torch.randint(0, 3, (n, 1, 1, 1), generator=gen, device=device)
    return torch.where(choice == 0, blurred, torch.where(choice == 1, binary, images))


BOX_HALF = 10 / 14  # MNIST's 20-pixel box, in grid units (14 px per unit on 28 px)
MAX_STRETCH = 3.0  # a narrow "1" widened further would be a block of ink, not a stroke
STROKE = 2  # MNIST's typical pen width in pixels


def _ink_box(images: Tensor, level: float = 0.1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each image's ink bounding box as centre and half-size in grid units, rows and columns (blank: the box)."""
    side = images.shape[-1]

    def centre_and_half(mask: Tensor) -> tuple[Tensor, Tensor]:
        first, length = (t.to(images.dtype) for t in extent(mask))
        first, length = torch.where(length == 0, 4.0, first), torch.where(length == 0, side - 8.0, length)
        return (2 * first + length) / side - 1, length / side  # centre, half-size

    ink = images[:, 0] > level
    (cy, hy), (cx, hx) = centre_and_half(ink.any(2)), centre_and_half(ink.any(1))
    return cx, cy, hx, hy


def stretch(images: Tensor, gen: torch.Generator) -> Tensor:
    """Half of the images stretched, each axis on its own, until the ink fills the 20x20 box (as SEMEION's and
    USPS's makers normalised their digits: a "1" becomes wide), at most 3x, bilinear, the strokes eroded back
    to a pen's width (the scan was stretched before the pen's width was set). The rest are kept."""
    n, device = len(images), images.device
    cx, cy, hx, hy = _ink_box(images)
    keep = torch.rand(n, generator=gen, device=device) < 0.5
    sx = torch.where(keep, 1.0, (hx / BOX_HALF).clamp(min=1 / MAX_STRETCH))
    sy = torch.where(keep, 1.0, (hy / BOX_HALF).clamp(min=1 / MAX_STRETCH))
    cx, cy, zero = torch.where(keep, 0.0, cx), torch.where(keep, 0.0, cy), torch.zeros_like(cx)
    wide = _warp(images, torch.stack([sx, zero, cx, zero, sy, cy], 1).view(-1, 2, 3), "bilinear")
    return _thin(_thin(wide, 1 / sx, dim=-1), 1 / sy, dim=-2)


def _thin(images: Tensor, factor: Tensor, dim: int) -> Tensor:
    """Strokes stretched ``factor`` times along ``dim`` eroded back towards a pen's width: a stroke as wide as
    ``STROKE`` pixels became ``factor`` times wider, so an erosion of (factor - 1) * STROKE pixels undoes it."""
    width = ((factor - 1) * STROKE).round().long().clamp(0, 2 * STROKE)  # pixels to remove, per image
    out = images
    for w in range(1, 2 * STROKE + 1):  # a window of w + 1 pixels, zero beyond the image
        eroded = _window(images, w // 2, w - w // 2, dim, torch.minimum, 0.0)
        out = torch.where((width == w).view(-1, 1, 1, 1), eroded, out)
    return out


def coarse(images: Tensor, gen: torch.Generator) -> Tensor:
    """Half of the images as a coarse binary scan: sampled at 16-22 px across (area), thresholded at
    0.35-0.65, brought back to 28 px (bilinear). The rest are kept."""
    n, device, side = len(images), images.device, images.shape[-1]
    low = int(torch.randint(16, 23, (1,), generator=gen, device=device))
    small = F.interpolate(images, size=(low, low), mode="area")
    binary = (small > _uniform(n, 0.35, 0.65, gen, device).view(n, 1, 1, 1)).to(images.dtype)
    back = F.interpolate(binary, size=(side, side), mode="bilinear", align_corners=False)
    keep = torch.rand(n, 1, 1, 1, generator=gen, device=device) < 0.5
    return torch.where(keep, images, back)


def handwriting(images: Tensor, gen: torch.Generator) -> Tensor:
    """``affine``, ``stretch``, ``thickness``, ``elastic``, then ``blur-binarize`` or ``coarse``: all together."""
    varied = elastic(thickness(stretch(affine(images, gen), gen), gen), gen)
    scan = torch.rand(len(images), 1, 1, 1, generator=gen, device=images.device) < 0.5
    return torch.where(scan, coarse(varied, gen), blur_binarize(varied, gen))


def scanned(images: Tensor, gen: torch.Generator) -> Tensor:
    """Half of each batch ``rotation`` (MNIST as it is), the other half ``handwriting``."""
    mixed = torch.rand(len(images), 1, 1, 1, generator=gen, device=images.device) < 0.5
    return torch.where(mixed, handwriting(images, gen), rotation(images, gen))


def _scanned_as(images: Tensor, cells: Tensor) -> Tensor:
    blank = (cells.amax((1, 2)) == 0).view(-1, 1, 1, 1)
    return torch.where(blank, images, prepare_scan(cells))


def _scanned(images: Tensor, make: Callable[[Tensor, Tensor], Tensor], threshold: Tensor,
             kept: Tensor | None) -> Tensor:
    """``make``'s scan of each image (thresholds per image) prepared as ``--predict`` would, blank scans keeping
    the image. ``kept`` (a boolean per image) says which scans the caller keeps: on the CPU only those are
    made and the other images come back as they were; elsewhere all are made (finding the kept ones would be
    a host sync on a GPU). Each scan is made per image, so the kept ones are the same either way (tested)."""
    if kept is None or images.device.type != "cpu":
        return _scanned_as(images, make(images, threshold))
    index, out = kept.view(-1).nonzero().view(-1), images.clone()
    if len(index):
        part = images[index]
        out[index] = _scanned_as(part, make(part, threshold[index]))
    return out


def scan(images: Tensor, gen: torch.Generator, kept: Tensor | None = None) -> Tensor:
    """Each image as a 16x16 binary scan (threshold 0.35-0.65) handed to ``--predict``: SEMEION's format, made
    exactly as the external evaluation makes it. Images whose scan is blank are kept."""
    return _scanned(images, binary_scan, _uniform(len(images), 0.35, 0.65, gen, images.device), kept)


def scans(images: Tensor, gen: torch.Generator, kept: Tensor | None = None) -> Tensor:
    """Each image as one of two other digit sets' scans handed to ``--predict``, half each: SEMEION's 16x16
    binary, stretched to its box (``scan``), or optdigits' 8x8 block counts of a 32x32 bitmap, aspect kept
    (``block_scan``); thresholds 0.35-0.65. Images whose scan is blank are kept."""
    n, device = len(images), images.device
    threshold = _uniform(n, 0.35, 0.65, gen, device)
    as_semeion = torch.rand(n, 1, 1, 1, generator=gen, device=device) < 0.5
    binary = _scanned(images, binary_scan, threshold, None if kept is None else kept & as_semeion)
    blocks = _scanned(images, block_scan, threshold, None if kept is None else kept & ~as_semeion)
    return torch.where(as_semeion, binary, blocks)


def _rotation_then(scanner: Callable[[Tensor, torch.Generator, Tensor], Tensor], share: float, images: Tensor,
                   gen: torch.Generator) -> Tensor:
    """``rotation`` for every image, then ``scanner`` for about ``share`` of them (drawn per image)."""
    rotated = rotation(images, gen)
    scanned_share = torch.rand(len(images), 1, 1, 1, generator=gen, device=images.device) < share
    return torch.where(scanned_share, scanner(rotated, gen, scanned_share), rotated)


def rotation_scan(images: Tensor, gen: torch.Generator) -> Tensor:
    """``rotation`` for every image, then half of them as 16x16 binary scans (``scan``)."""
    return _rotation_then(scan, 0.5, images, gen)


def rotation_scans(images: Tensor, gen: torch.Generator) -> Tensor:
    """``rotation`` for every image, then half of them as another digit set's scan (``scans``)."""
    return _rotation_then(scans, 0.5, images, gen)


def rotation_scans_third(images: Tensor, gen: torch.Generator) -> Tensor:
    """``rotation`` for every image, then a third of them as another digit set's scan (``scans``): more of
    each batch left as MNIST's own digits than ``rotation-scans``."""
    return _rotation_then(scans, 1 / 3, images, gen)


def writers_scan(images: Tensor, gen: torch.Generator) -> Tensor:
    """Half ``rotation``; the other half ``affine``, ``thickness`` and ``elastic`` (another hand), then ``scan``."""
    other_hand = torch.rand(len(images), 1, 1, 1, generator=gen, device=images.device) < 0.5
    varied = scan(elastic(thickness(affine(images, gen), gen), gen), gen, other_hand)
    return torch.where(other_hand, varied, rotation(images, gen))


FONT_SHARE = 0.1  # the share of a batch drawn by a font's hand instead of an MNIST writer's


@functools.lru_cache(maxsize=4)
def _training_fonts(device: torch.device) -> Tensor:
    """The training fonts' digits (fonts, 10, 28, 28) in [0, 1] on ``device``, read once."""
    return font_digits.load("train").images.to(device).float().div_(255.0)


def fonts(images: Tensor, gen: torch.Generator, labels: Tensor, share: float = FONT_SHARE) -> Tensor:
    """About ``share`` of the images (drawn per image) replaced by the same digit in a random training font
    (``font_digits``), varied as another hand would draw it (``affine``, ``thickness``, ``elastic``). Only the
    replacements are drawn and varied; finding them is a host sync on a GPU, once an epoch there (the
    whole epoch's batches are made at once)."""
    glyphs = _training_fonts(images.device)
    n, device = len(images), images.device
    chosen = (torch.rand(n, generator=gen, device=device) < share).nonzero().view(-1)
    font = torch.randint(0, len(glyphs), (len(chosen),), generator=gen, device=device)
    out = images.clone()
    out[chosen] = elastic(thickness(affine(glyphs[font, labels[chosen]].unsqueeze(1), gen), gen), gen)
    return out


def rotation_scans_third_fonts(images: Tensor, gen: torch.Generator, labels: Tensor) -> Tensor:
    """A tenth of each batch in a training font's hand (``fonts``), then ``rotation-scans-third``."""
    return rotation_scans_third(fonts(images, gen, labels), gen)


NON_DIGITS_DRAWN = 2000  # scribbles and as many shapes drawn for training, beside the training fonts' letters


@functools.lru_cache(maxsize=4)
def training_non_digits(device: torch.device) -> Tensor:
    """The training non-digits (``nondigits.pool("train")``) as (N, 1, 28, 28) in [0, 1] on ``device``, made once."""
    return nondigits.pool("train", NON_DIGITS_DRAWN).to(device).float().div_(255.0).unsqueeze(1)


def pick_non_digits(count: int, gen: torch.Generator, device: torch.device, pool: Tensor | None = None) -> Tensor:
    """``count`` training non-digits drawn at random (from ``pool``, (N, 1, 28, 28) in [0, 1]; by default
    ``training_non_digits``), a quarter of them turned by a right angle (a letter on its side is still no digit),
    not varied otherwise."""
    return draw_non_digits(count, gen, device, pool)[0]


def draw_non_digits(count: int, gen: torch.Generator, device: torch.device,
                    pool: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``pick_non_digits``' images, from the same random draws, and which of ``pool`` each is (-1 for those
    turned): what a trainer that tells the non-digits apart needs to label them."""
    pool = training_non_digits(device) if pool is None else pool
    index = torch.randint(0, len(pool), (count,), generator=gen, device=device)
    chosen = pool[index]
    turns = torch.randint(0, 4, (count, 1, 1, 1), generator=gen, device=device)
    turned = turns == 1
    return torch.where(turned, chosen.transpose(-1, -2).flip(-1), chosen), index.masked_fill(turned.view(-1), -1)


def non_digits(count: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """``count`` training non-digits (``pick_non_digits``), each varied as another hand would draw it (``affine``,
    ``thickness``, ``elastic``)."""
    return elastic(thickness(affine(pick_non_digits(count, gen, device), gen), gen), gen).clamp_(0, 1)


@dataclass(frozen=True)
class Augmentation:
    name: str
    apply: Callable[..., Tensor]
    description: str
    uses_labels: bool = False  # apply(images, gen, labels): the strategy draws digits of the batch's classes
    reads: Callable[[torch.device], object] | None = None  # loads what it draws from (a missing file fails early)


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
CLASSIC = ("rotation", "none")  # what the classic torchvision pipeline can do


def register(name: str, apply: Callable[..., Tensor], uses_labels: bool = False,
             reads: Callable[[torch.device], object] | None = None) -> None:
    summary = " ".join((apply.__doc__ or "").split("\n\n")[0].split())  # the docstring's first paragraph
    AUGMENTATIONS.register(name, Augmentation(name, apply, summary, uses_labels, reads))


register("none", lambda images, gen: images)
register("rotation", rotation)
register("affine", affine)
register("thickness", thickness)
register("elastic", elastic)
register("blur-binarize", blur_binarize)
register("stretch", stretch)
register("coarse", coarse)
register("handwriting", handwriting)
register("scanned", scanned)
register("scan", scan)
register("scans", scans)
register("rotation-scan", rotation_scan)
register("rotation-scans", rotation_scans)
register("rotation-scans-third", rotation_scans_third)
register("writers-scan", writers_scan)
register("rotation-scans-third-fonts", rotation_scans_third_fonts, uses_labels=True, reads=_training_fonts)


def ready(name: str, device: torch.device) -> None:
    """Loads what the named strategy draws from, so that a missing or damaged file stops a run before its
    first epoch (``font_digits.FontDigitsError``) rather than inside it."""
    if AUGMENTATIONS[name].reads is not None:
        AUGMENTATIONS[name].reads(device)


def augment(name: str, images: Tensor, gen: torch.Generator, labels: Tensor | None = None) -> Tensor:
    """``images`` varied by the named strategy, clamped to [0, 1] (interpolation can round past either end).
    ``labels`` (the images' classes) are needed by the strategies that draw digits of a class."""
    strategy = AUGMENTATIONS[name]
    if not strategy.uses_labels:
        return strategy.apply(images, gen).clamp_(0, 1)
    if labels is None:
        raise ValueError(f"augmentation {name!r} draws digits of the batch's classes: pass the labels")
    return strategy.apply(images, gen, labels).clamp_(0, 1)

