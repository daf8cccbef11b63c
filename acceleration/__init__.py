"""Speed as an execution layer: ``accelerate(model, backend)`` returns the same network, run faster.

The models are stock layers; this layer takes a built model and swaps recognised patterns for fused
modules with the same children and ``state_dict`` (``fused.py``), backed by C kernels registered as
``torch.library`` ops (``ops.py``, ``native.py``, ``kernels/``). Backends:

- ``native``: channels-last weights, conv -> ReLU -> BN -> dropout, 1x1 conv -> 2x2 max-pool and the other
  2x2 max-pools through the C kernels (CPU); a block whose output goes straight into the 1x1 conv and pool
  runs with them as one kernel (``fused.FusedSequential``).
- ``torch``: channels-last weights, the same block fusion from PyTorch ops: the fallback and test reference (CPU).
- ``channels-last``: only the memory layout (what GPUs get; cuDNN's narrow convolutions prefer it).
- ``none``: the model as built: the classic pipeline the benchmark compares against.

``auto`` picks ``native`` on a CPU where the kernels build, else ``torch``; ``channels-last`` elsewhere.
"""
from __future__ import annotations

import torch
from torch import nn

from acceleration import fused, native
from core.registry import Registry, UnknownName

BACKENDS: Registry[str] = Registry("backend")  # name -> what it does
BACKENDS.register("auto", "native on a CPU where the kernels build, else torch; channels-last on a GPU")
BACKENDS.register("native", "channels-last weights and the fused blocks through the C kernels (CPU)")
BACKENDS.register("torch", "channels-last weights and the same block fusion from PyTorch ops (CPU)")
BACKENDS.register("channels-last", "only the memory layout (what GPUs get)")
BACKENDS.register("none", "the model as built: the classic pipeline")
CPU_ONLY = ("native", "torch")


class AccelerationError(ValueError):
    """A backend that cannot run here (no C kernels, or a CPU backend for another device)."""


def resolve(backend: str, device: torch.device | str) -> str:
    """The backend ``auto`` stands for on ``device``; an explicit one, checked that it can run there."""
    device = torch.device(device)
    if backend not in BACKENDS:
        raise AccelerationError(str(UnknownName("backend", backend, list(BACKENDS))))
    if backend == "auto":
        if device.type != "cpu":
            return "channels-last"
        return "native" if native.library() is not None else "torch"
    if backend in CPU_ONLY and device.type != "cpu":
        raise AccelerationError(f"backend {backend} runs on a CPU only, not on {device.type}")
    if backend == "native" and native.library() is None:
        raise AccelerationError("backend native: the C kernels cannot be built here (no C compiler, not Linux,"
                                f" or {native.SWITCH}=0); use --backend torch")
    return backend


def accelerate(model: nn.Module, backend: str = "auto") -> tuple[nn.Module, str]:
    """The model, changed in place to run on ``backend``, and the backend's name (for the records)."""
    parameter = next(model.parameters(), None)
    name = resolve(backend, parameter.device if parameter is not None else "cpu")
    if name == "none":
        return model, name
    model = model.to(memory_format=torch.channels_last)
    if name == "native":
        for parent in list(model.modules()):
            if isinstance(parent, nn.Sequential):
                for i in range(len(parent) - 1):
                    if fused.is_pointwise_conv(parent[i]) and fused.is_plain_2x2_pool(parent[i + 1]):
                        parent[i], parent[i + 1] = fused.PointwiseConvPool(parent[i]), nn.Identity()
    if name in CPU_ONLY:
        for parent in list(model.modules()):
            for child_name, child in list(parent.named_children()):
                if fused.is_conv_block(child):
                    setattr(parent, child_name, fused.FusedConvBlock(child, native=name == "native"))
                elif name == "native" and fused.is_plain_2x2_pool(child):
                    setattr(parent, child_name, fused.FusedMaxPool2d(2))
    if name == "native":
        for qualified, module in list(model.named_modules()):
            if type(module) is nn.Sequential and fused.has_fusable_pair(module):
                if qualified == "":
                    model = fused.FusedSequential(module)
                else:
                    parent_name, _, child_name = qualified.rpartition(".")
                    setattr(model.get_submodule(parent_name), child_name, fused.FusedSequential(module))
    return model, name
