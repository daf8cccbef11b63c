"""CNN with BatchNorm: three padded conv blocks (32,32 | 64,64 | 128), 437,738 parameters."""
from torch import Tensor, nn


def _conv(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()]


def _pool() -> list[nn.Module]:
    return [nn.MaxPool2d(2), nn.Dropout(0.25)]


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *_conv(1, 32), *_conv(32, 32), *_pool(),    # 14x14x32
            *_conv(32, 64), *_conv(64, 64), *_pool(),   # 7x7x64
            *_conv(64, 128), *_pool(),                  # 3x3x128
            nn.Flatten(),
            nn.Linear(1152, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
