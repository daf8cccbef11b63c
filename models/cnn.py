"""The pytorch/examples MNIST CNN: 1,199,882 parameters."""
from torch import Tensor, nn

from models.knobs import scaled

DROPOUT = 0.5  # the head's; the feature maps drop half as many (0.25), as in pytorch/examples


class Net(nn.Module):
    def __init__(self, dropout: float = DROPOUT, width: float = 1.0) -> None:
        super().__init__()
        c32, c64, h = scaled(32, width), scaled(64, width), scaled(128, width)
        self.layers = nn.Sequential(
            nn.Conv2d(1, c32, 3), nn.ReLU(),              # 26x26x32
            nn.Conv2d(c32, c64, 3), nn.ReLU(),            # 24x24x64
            nn.MaxPool2d(2), nn.Dropout(dropout / 2),     # 12x12x64
            nn.Flatten(),
            nn.Linear(12 * 12 * c64, h), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(h, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
