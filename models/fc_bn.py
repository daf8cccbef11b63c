"""Wide fully connected baseline with BatchNorm1d: 784-1024-512-256-128-10, 1,497,994 parameters."""
from torch import Tensor, nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widths = [784, 1024, 512, 256, 128]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.BatchNorm1d(w_out), nn.ReLU(), nn.Dropout(0.4)]
        layers.append(nn.Linear(widths[-1], 10))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
