"""Optimizer strategies: each builds its torch optimizer and declares the settings it reads.

A setting an optimizer does not read (``momentum`` for Adam) is refused by ``config.resolve`` when it
is given, and left out of the run's record when it is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from core.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer, the settings it reads, and its usual rates where the model's recipe uses another."""

    factory: Callable[..., torch.optim.Optimizer]
    lr: float
    max_lr: float
    reads: tuple[str, ...] = ("weight_decay",)
    graph_safe: dict | None = None  # options under which its update can be recorded in a CUDA graph


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")
OPTIMIZERS.register("sgd", OptimizerSpec(torch.optim.SGD, lr=0.1, max_lr=0.75, reads=("momentum", "weight_decay"),
                                         graph_safe={"fused": True}))
OPTIMIZERS.register("adam", OptimizerSpec(torch.optim.Adam, lr=1e-3, max_lr=3e-3, graph_safe={"capturable": True}))
OPTIMIZERS.register("adamw", OptimizerSpec(torch.optim.AdamW, lr=1e-3, max_lr=3e-3, graph_safe={"capturable": True}))
OPTIMIZERS.register("adagrad", OptimizerSpec(torch.optim.Adagrad, lr=1e-2, max_lr=5e-2))


def build_optimizer(name: str, model: nn.Module, lr: float, momentum: float | None, weight_decay: float,
                    graph_safe: bool = False) -> torch.optim.Optimizer:
    """The named optimizer; ``graph_safe`` asks for the variant a ``CudaGraphStep`` can record."""
    spec = OPTIMIZERS[name]
    extra = {"momentum": momentum} if "momentum" in spec.reads else {}
    if graph_safe:
        if spec.graph_safe is None:
            raise ValueError(f"optimizer {name!r} cannot run inside a CUDA graph")
        extra |= spec.graph_safe
    return spec.factory(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)
