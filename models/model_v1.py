"""V1: 7,720 parameters; a 1x1 convolution is the classifier head."""
from torch import Tensor, nn

from models.blocks import conv_block, stem
from models.knobs import scaled

DROPOUT = 0.01


def body(dropout: float, width: float = 1.0, batch_norm: bool = True) -> nn.Sequential:
    """28x28x1 -> 1x1x10 features (channels times ``width``); V2 reuses it with another dropout and head."""
    c10, c16 = scaled(10, width), scaled(16, width)
    bn = batch_norm
    return nn.Sequential(
        stem(dropout, width, bn),                          # 12x12x10
        conv_block(c10, c16, dropout, batch_norm=bn),      # 10x10x16
        conv_block(c16, c16, dropout, batch_norm=bn),      # 8x8x16
        conv_block(c16, c10, dropout, batch_norm=bn),      # 6x6x10
        conv_block(c10, c10, dropout, padding=1, batch_norm=bn),  # 6x6x10
        nn.AvgPool2d(6),                                   # 1x1x10
    )


class Net(nn.Module):
    def __init__(self, dropout: float = DROPOUT, width: float = 1.0, batch_norm: bool = True) -> None:
        super().__init__()
        self.features = body(dropout, width, batch_norm)
        self.head = nn.Conv2d(scaled(10, width), 10, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).flatten(1)
