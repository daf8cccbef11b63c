"""The digit detector: a plain CNN (three pairs of 3x3 conv with batch norm, 32 | 64 | 128 channels, global average
pooling) with eleven outputs — the ten digits and "not a digit" — or more, where each training letter has a class of
its own beside "not a digit" (``training.detector --letter-classes``). It stands in front of every reader of the zoo
(``analysis.detector``) and is no member of it: the zoo's architectures and their parameter counts stay as published.
"""
from torch import Tensor, nn

NOT_A_DIGIT = 10  # the eleventh output
WIDTH = 32


class Net(nn.Module):
    def __init__(self, width: int = WIDTH, dropout: float = 0.2, outputs: int = NOT_A_DIGIT + 1) -> None:
        super().__init__()

        def conv(in_ch: int, out_ch: int) -> list[nn.Module]:
            return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]

        self.layers = nn.Sequential(
            *conv(1, width), *conv(width, width), nn.MaxPool2d(2),                  # 14x14
            *conv(width, 2 * width), *conv(2 * width, 2 * width), nn.MaxPool2d(2),  # 7x7
            *conv(2 * width, 4 * width), *conv(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width, outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
