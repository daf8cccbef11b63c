"""Fully connected baseline: 784-256-128-10, 235,146 parameters."""
from torch import Tensor, nn

from models.knobs import scaled

DROPOUT = 0.2


class Net(nn.Module):
    def __init__(self, dropout: float = DROPOUT, width: float = 1.0) -> None:
        super().__init__()
        h1, h2 = scaled(256, width), scaled(128, width)
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, h1), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(h2, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
