"""Layers shared by the tiny CNNs (V1-V3): stock modules only (how they run fast: ``acceleration``)."""
from __future__ import annotations

from torch import nn


def conv_block(in_ch: int, out_ch: int, dropout: float, padding: int = 0) -> nn.Sequential:
    """3x3 convolution without bias, then ReLU, BatchNorm2d and Dropout (the tiny nets' unit)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=padding, bias=False),
        nn.ReLU(),
        nn.BatchNorm2d(out_ch),
        nn.Dropout(dropout),
    )


def stem(dropout: float) -> nn.Sequential:
    """28x28x1 -> 26x26x8 -> 24x24x16 -> 1x1 transition to 10 channels -> max-pool to 12x12x10."""
    return nn.Sequential(
        conv_block(1, 8, dropout),
        conv_block(8, 16, dropout),
        nn.Conv2d(16, 10, kernel_size=1, bias=False),
        nn.MaxPool2d(2),
    )
