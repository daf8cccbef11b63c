"""Layers shared by the tiny CNNs (V1-V3): stock modules only (how they run fast: ``acceleration``)."""
from __future__ import annotations

from torch import nn

from models.knobs import scaled


def conv_block(in_ch: int, out_ch: int, dropout: float, padding: int = 0, batch_norm: bool = True) -> nn.Sequential:
    """3x3 convolution without bias, then ReLU, BatchNorm2d (left out when ``batch_norm`` is off) and Dropout:
    the tiny nets' unit."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=padding, bias=False),
        nn.ReLU(),
        *([nn.BatchNorm2d(out_ch)] if batch_norm else []),
        nn.Dropout(dropout),
    )


def stem(dropout: float, width: float = 1.0, batch_norm: bool = True) -> nn.Sequential:
    """28x28x1 -> 26x26x8 -> 24x24x16 -> 1x1 transition to 10 channels -> max-pool to 12x12x10 (channels times
    ``width``)."""
    c8, c16, c10 = scaled(8, width), scaled(16, width), scaled(10, width)
    return nn.Sequential(
        conv_block(1, c8, dropout, batch_norm=batch_norm),
        conv_block(c8, c16, dropout, batch_norm=batch_norm),
        nn.Conv2d(c16, c10, kernel_size=1, bias=False),
        nn.MaxPool2d(2),
    )
