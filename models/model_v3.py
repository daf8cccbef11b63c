"""V3: 8,650 parameters; one more 3x3 stage after the pool, padded to keep 10x10."""
from torch import Tensor, nn

from models.blocks import conv_block, stem
from models.knobs import scaled

DROPOUT = 0.025


class Net(nn.Module):
    def __init__(self, dropout: float = DROPOUT, width: float = 1.0, batch_norm: bool = True) -> None:
        super().__init__()
        d, bn = dropout, batch_norm
        c10, c16 = scaled(10, width), scaled(16, width)
        self.features = nn.Sequential(
            stem(d, width, bn),                                # 12x12x10
            conv_block(c10, c10, d, batch_norm=bn),            # 10x10x10
            conv_block(c10, c16, d, padding=1, batch_norm=bn), # 10x10x16
            conv_block(c16, c16, d, batch_norm=bn),            # 8x8x16
            conv_block(c16, c10, d, batch_norm=bn),            # 6x6x10
            conv_block(c10, c10, d, padding=1, batch_norm=bn), # 6x6x10
            nn.AdaptiveAvgPool2d(1),                           # 1x1x10
        )
        self.head = nn.Linear(c10, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))
