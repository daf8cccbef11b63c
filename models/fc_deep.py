"""Deeper fully connected baseline: 784-512-256-128-10, 567,434 parameters, Xavier init."""
from torch import Tensor, nn

from models.knobs import scaled

DROPOUT = 0.3


class Net(nn.Module):
    def __init__(self, dropout: float = DROPOUT, width: float = 1.0) -> None:
        super().__init__()
        widths = [784, *(scaled(w, width) for w in (512, 256, 128))]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(widths[-1], 10))
        self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
