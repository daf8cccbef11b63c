"""The pytorch/examples MNIST CNN: 1,199,882 parameters."""
from torch import Tensor, nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(),      # 26x26x32
            nn.Conv2d(32, 64, 3), nn.ReLU(),     # 24x24x64
            nn.MaxPool2d(2), nn.Dropout(0.25),   # 12x12x64
            nn.Flatten(),
            nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
