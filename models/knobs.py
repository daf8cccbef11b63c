"""Model knobs: what an architecture lets a run change beyond its defaults.

A model module's ``Net`` takes its knobs as keyword arguments whose defaults are the published network
(``dropout``, ``width``, ``batch_norm``; each only where the architecture has it), so the defaults keep every
parameter count exact. The initialisation scheme is the one knob every model has; it is applied to a built
network (``initialise``), since it changes values, not structure.
"""
from __future__ import annotations

import math
from typing import Callable

from torch import nn

from core.registry import Registry


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, at least 1: the same at ``width`` 1."""
    return max(1, int(math.floor(channels * width + 0.5)))


def _xavier(module: nn.Module) -> None:
    nn.init.xavier_uniform_(module.weight)


def _kaiming(module: nn.Module) -> None:
    nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")


# name -> how it sets a convolution's or linear layer's weight (biases start at zero); "default": as built
INITS: Registry[Callable[[nn.Module], None] | None] = Registry("initialisation")
INITS.register("default", None)  # PyTorch's own (Kaiming-uniform with a=sqrt(5)), or the architecture's (fc-deep: Xavier)
INITS.register("xavier", _xavier)  # Glorot & Bengio (2010), uniform
INITS.register("kaiming", _kaiming)  # He et al. (2015), normal, fan-in, for ReLU


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """``model`` with every convolution's and linear layer's weights drawn by ``scheme`` and biases zeroed
    (``default``: left as built). Draws from torch's global generator, like the layers' own initialisation."""
    init = INITS[scheme]
    if init is not None:
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                init(module)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    return model
