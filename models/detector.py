"""The digit detector: a plain CNN (three pairs of 3x3 conv with batch norm, 32 | 64 | 128 channels) with eleven
outputs — the ten digits and "not a digit" — or more, where each training letter has a class of its own beside
"not a digit" (``training.detector --letter-classes``). Its head is global average pooling (``"average"``: where
on the 7x7 grid a feature fired is forgotten) or a 1x1 convolution to a few channels whose whole 7x7 grid feeds
the last layer (``"grid"``: where each feature fired is kept, as in the classic MNIST CNNs). It stands in front of
every reader of the zoo (``analysis.detector``) and is no member of it: the zoo's architectures and their parameter
counts stay as published.
"""
from collections.abc import Callable

from torch import Tensor, nn

NOT_A_DIGIT = 10  # the eleventh output
WIDTH = 32
HEAD = "average"
GRID_CHANNELS = 16  # the "grid" head's channels at each of the 7x7 places


def _average(channels: int, dropout: float, outputs: int) -> list[nn.Module]:
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, outputs)]


def _grid(channels: int, dropout: float, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, GRID_CHANNELS, 1, bias=False), nn.BatchNorm2d(GRID_CHANNELS), nn.ReLU(),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(GRID_CHANNELS * 7 * 7, outputs)]


HEADS: dict[str, Callable[[int, float, int], list[nn.Module]]] = {"average": _average, "grid": _grid}


class Net(nn.Module):
    def __init__(self, width: int = WIDTH, dropout: float = 0.2, outputs: int = NOT_A_DIGIT + 1,
                 head: str = HEAD) -> None:
        super().__init__()

        def conv(in_ch: int, out_ch: int) -> list[nn.Module]:
            return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]

        self.layers = nn.Sequential(
            *conv(1, width), *conv(width, width), nn.MaxPool2d(2),                  # 14x14
            *conv(width, 2 * width), *conv(2 * width, 2 * width), nn.MaxPool2d(2),  # 7x7
            *conv(2 * width, 4 * width), *conv(4 * width, 4 * width),
            *HEADS[head](4 * width, dropout, outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
