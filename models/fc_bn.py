"""Wide fully connected baseline with BatchNorm1d: 784-1024-512-256-128-10, 1,497,994 parameters."""
from torch import Tensor, nn

from models.knobs import scaled

DROPOUT = 0.4


class Net(nn.Module):
    def __init__(self, dropout: float = DROPOUT, width: float = 1.0, batch_norm: bool = True) -> None:
        super().__init__()
        widths = [784, *(scaled(w, width) for w in (1024, 512, 256, 128))]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), *([nn.BatchNorm1d(w_out)] if batch_norm else []), nn.ReLU(),
                       nn.Dropout(dropout)]
        layers.append(nn.Linear(widths[-1], 10))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
