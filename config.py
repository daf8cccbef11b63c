"""The one record a run is described by: every hyperparameter, where data and outputs live."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RunConfig:
    model: str
    scheduler: str
    epochs: int
    optimizer: str
    lr: float
    max_lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    label_smoothing: float
    seed: int
    device: str
    data_dir: str
    loader: str
    subset: int | None
    val_split: int
    out_dir: str | None
    patience: int | None = None
    verify: bool = True
    cuda_graph: bool = True  # how a CUDA run executes its steps; the same computation either way
    backend: str = "auto"  # how the model runs fast (acceleration.BACKENDS); the same network either way

    def to_dict(self) -> dict:
        return asdict(self)
