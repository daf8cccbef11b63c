"""Photo-like renderings of MNIST digits, as users hand them in: on grey noisy paper with a shadow and
JPEG artefacts, drawn on a transparent PNG, or small somewhere on a large white page."""
from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image


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


RENDERINGS = {"grey-paper": grey_paper, "transparent": transparent, "large-page": large_page}


def jpeg_bytes(pixels: torch.Tensor, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((pixels.clamp(0, 1) * 255).round().byte().numpy(), mode="L").save(buffer, format="JPEG",
                                                                                       quality=quality)
    return buffer.getvalue()
