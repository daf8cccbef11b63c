"""CNN with BatchNorm: three padded conv blocks (32,32 | 64,64 | 128), 437,738 parameters."""
from torch import Tensor, nn

from models.knobs import scaled

DROPOUT = 0.5  # the head's; the feature maps drop half as many (0.25)


class Net(nn.Module):
    def __init__(self, dropout: float = DROPOUT, width: float = 1.0, batch_norm: bool = True) -> None:
        super().__init__()
        c32, c64, c128, h = (scaled(c, width) for c in (32, 64, 128, 256))

        def conv(in_ch: int, out_ch: int) -> list[nn.Module]:
            return [nn.Conv2d(in_ch, out_ch, 3, padding=1), *([nn.BatchNorm2d(out_ch)] if batch_norm else []), nn.ReLU()]

        def pool() -> list[nn.Module]:
            return [nn.MaxPool2d(2), nn.Dropout(dropout / 2)]

        self.layers = nn.Sequential(
            *conv(1, c32), *conv(c32, c32), *pool(),    # 14x14x32
            *conv(c32, c64), *conv(c64, c64), *pool(),  # 7x7x64
            *conv(c64, c128), *pool(),                  # 3x3x128
            nn.Flatten(),
            nn.Linear(3 * 3 * c128, h), *([nn.BatchNorm1d(h)] if batch_norm else []), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(h, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
