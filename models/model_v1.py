"""V1: 7,720 parameters; a 1x1 convolution is the classifier head."""
from torch import Tensor, nn

from models.blocks import conv_block, stem

DROPOUT = 0.01


def body(dropout: float) -> nn.Sequential:
    """28x28x1 -> 1x1x10 features; V2 reuses it with another dropout and head."""
    return nn.Sequential(
        stem(dropout),                          # 12x12x10
        conv_block(10, 16, dropout),            # 10x10x16
        conv_block(16, 16, dropout),            # 8x8x16
        conv_block(16, 10, dropout),            # 6x6x10
        conv_block(10, 10, dropout, padding=1), # 6x6x10
        nn.AvgPool2d(6),                        # 1x1x10
    )


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = body(DROPOUT)
        self.head = nn.Conv2d(10, 10, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).flatten(1)
