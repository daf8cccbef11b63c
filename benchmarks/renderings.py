"""MNIST digits rendered as image files the way people hand digits in: photos (grey noisy paper with a
shadow and JPEG artefacts, a transparent PNG, small on a large page, on ruled or squared paper, a sheet
photographed on a dark desk) and the way other digit sets store them (cropped tight at 16 or 64 pixels,
grey or binary, aspect kept or stretched to fill the box, dark or light ink). Each rendering takes a
(28, 28) uint8 digit, a path without suffix and a generator, writes one file and returns its path."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

Rendering = Callable[[torch.Tensor, Path, torch.Generator], Path]


def _enlarged(digit: torch.Tensor, side: int) -> torch.Tensor:
    """A (28, 28) uint8 MNIST digit as ink coverage in [0, 1] at ``side`` x ``side`` pixels."""
    image = Image.fromarray(digit.numpy(), mode="L").resize((side, side), Image.Resampling.BICUBIC)
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(side, side).float().div(255).clamp(0, 1)


def _save_gray(pixels: torch.Tensor, path: Path, **options) -> Path:  # noqa: ANN003
    Image.fromarray((pixels.clamp(0, 1) * 255).round().byte().numpy(), mode="L").save(path, **options)
    return path


def grey_paper(digit: torch.Tensor, path: Path, gen: torch.Generator) -> Path:
    """Dark ink on grey paper (0.55-0.8) with a shadow across it, sensor noise and JPEG quality 60-80."""
    side = int(torch.randint(96, 200, (1,), generator=gen))
    ink = _enlarged(digit, side)
    paper = 0.55 + 0.25 * float(torch.rand(1, generator=gen))
    ramp = torch.linspace(0, 1, side)
    shadow = 1.0 - 0.35 * (ramp[None, :] if torch.rand(1, generator=gen) < 0.5 else ramp[:, None])
    pen = 0.08 + 0.12 * float(torch.rand(1, generator=gen))
    page = shadow * (paper * (1 - ink) + pen * ink) + 0.04 * torch.randn(side, side, generator=gen)
    return _save_gray(page, path.with_suffix(".jpg"), quality=int(torch.randint(60, 81, (1,), generator=gen)))


def transparent(digit: torch.Tensor, path: Path, gen: torch.Generator) -> Path:
    """Black (or dark blue) strokes on a fully transparent canvas: the ink is only in the alpha channel."""
    side = int(torch.randint(64, 160, (1,), generator=gen))
    alpha = _enlarged(digit, side)
    colour = (0, 0, 0) if torch.rand(1, generator=gen) < 0.5 else (20, 30, 120)
    rgba = torch.zeros(side, side, 4, dtype=torch.uint8)
    rgba[..., :3] = torch.tensor(colour, dtype=torch.uint8)
    rgba[..., 3] = (alpha * 255).round().byte()
    Image.fromarray(rgba.numpy(), mode="RGBA").save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def large_page(digit: torch.Tensor, path: Path, gen: torch.Generator) -> Path:
    """A digit 40-80 pixels tall placed near a corner of a 640x480 off-white page, light noise, JPEG."""
    side = int(torch.randint(40, 81, (1,), generator=gen))
    ink = _enlarged(digit, side)
    page = torch.full((480, 640), 0.93) + 0.02 * torch.randn(480, 640, generator=gen)
    top = int(torch.randint(10, 60, (1,), generator=gen))
    left = int(torch.randint(10, 60, (1,), generator=gen))
    if torch.rand(1, generator=gen) < 0.5:
        top, left = 480 - side - top, 640 - side - left
    region = page[top: top + side, left: left + side]
    page[top: top + side, left: left + side] = region * (1 - ink) + 0.1 * ink
    return _save_gray(page, path.with_suffix(".jpg"), quality=85)


def _lined(digit: torch.Tensor, path: Path, gen: torch.Generator, squared: bool) -> Path:
    """Dark ink on white notebook paper with grey printed lines every 25 pixels (and columns, ``squared``)."""
    side = int(torch.randint(96, 140, (1,), generator=gen))
    page = torch.ones(side + 60, side + 60)
    offset = int(torch.randint(0, 25, (1,), generator=gen))
    page[offset::25] = 0.65
    if squared:
        page[:, offset::25] = 0.65
    page[30: 30 + side, 30: 30 + side] *= 1 - 0.9 * _enlarged(digit, side)
    return _save_gray(page, path.with_suffix(".png"))


def ruled(digit: torch.Tensor, path: Path, gen: torch.Generator) -> Path:
    return _lined(digit, path, gen, squared=False)


def squared(digit: torch.Tensor, path: Path, gen: torch.Generator) -> Path:
    return _lined(digit, path, gen, squared=True)


def dark_desk(digit: torch.Tensor, path: Path, gen: torch.Generator) -> Path:
    """A sheet photographed on a dark desk: the desk shows along two edges of the photo; noise, JPEG."""
    side = int(torch.randint(96, 140, (1,), generator=gen))
    page = torch.full((side + 80, side + 80), 0.85)
    page[40: 40 + side, 40: 40 + side] *= 1 - 0.9 * _enlarged(digit, side)
    page[:20] = 0.15
    page[:, -25:] = 0.15
    page = page + 0.02 * torch.randn(page.shape, generator=gen)
    return _save_gray(page, path.with_suffix(".jpg"), quality=80)


def _cropped(digit: torch.Tensor, side: int, stretch: bool) -> torch.Tensor:
    """The digit's ink box (pixels above 0.1) at ``side`` pixels by area sampling: by its larger side,
    centred (aspect kept), or ``stretch``-ed on both axes; scaled so its darkest ink is full."""
    ink = digit.float() / 255.0
    rows, cols = (ink > 0.1).any(1).nonzero().flatten(), (ink > 0.1).any(0).nonzero().flatten()
    box = ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    h, w = box.shape
    size = (side, side) if stretch else (max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w))))
    small = torch.nn.functional.interpolate(box[None, None], size=size, mode="area")[0, 0]
    out = torch.zeros(side, side)
    top, left = (side - size[0]) // 2, (side - size[1]) // 2
    out[top: top + size[0], left: left + size[1]] = small / small.max()
    return out


def _crop_rendering(side: int, stretch: bool, binary: bool, dark_ink: bool) -> Rendering:
    def render(digit: torch.Tensor, path: Path, gen: torch.Generator) -> Path:
        ink = _cropped(digit, side, stretch)
        ink = (ink > 0.5).float() if binary else ink
        return _save_gray(1 - ink if dark_ink else ink, path.with_suffix(".png"))
    return render


RENDERINGS: dict[str, Rendering] = {"grey-paper": grey_paper, "transparent": transparent, "large-page": large_page}  # photos
CROPS = {f"{how}-{side}-{shade}-ink": _crop_rendering(side, "stretched" in how, how.startswith("binary"),
                                                      shade == "dark")
         for how, side in (("tight", 16), ("tight", 64), ("stretched", 16), ("binary-stretched", 16))
         for shade in ("dark", "light")}
LINED = {"ruled": ruled, "squared": squared}
DESK = {"dark-desk": dark_desk}
