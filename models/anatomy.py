"""Figures of merit of a network, computed from its modules: parameters, multiply-accumulates per image,
weight size, and each layer's output size and receptive field.

One forward pass of a single 28x28 image with hooks on the leaf modules, in execution order. MACs count
the convolutions and linear layers (the arithmetic that matters; batch norm, activations and pooling are
a rounding error next to them). The receptive field follows the usual recurrence over the spatial
layers: a layer of kernel k, dilation d and stride s grows it by (k - 1) * d * jump and multiplies the
jump by s; global pooling and the layers after it see the whole input.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

INPUT = (1, 1, 28, 28)


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    output: tuple[int, ...]  # (C, H, W) or (features,)
    macs: int
    receptive_field: int | None  # pixels on a side; None before any spatial layer is reached


@dataclass(frozen=True)
class Anatomy:
    params: int
    macs: int
    weights_kb: float  # the state_dict's bytes / 1024
    layers: tuple[Layer, ...]

    @property
    def is_convolutional(self) -> bool:
        return any(layer.kind == "Conv2d" for layer in self.layers)

    def table(self) -> str:
        """One line per layer: name, kind, output size, receptive field, MACs."""
        rows = [("layer", "kind", "output", "receptive field", "MACs")]
        for layer in self.layers:
            rf = "-" if layer.receptive_field is None else f"{layer.receptive_field}x{layer.receptive_field}"
            rows.append((layer.name, layer.kind, "x".join(map(str, layer.output)), rf, f"{layer.macs:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         for r in rows)


def _pair(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]


def analyse(model: nn.Module) -> Anatomy:
    """The figures of merit of ``model`` (left in the mode it was in)."""
    records: list[tuple[str, nn.Module, torch.Size, torch.Size]] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [m.register_forward_hook(lambda m, args, out: records.append((names[m], m, args[0].shape, out.shape)))
             for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(INPUT, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()

    layers, rf, jump, seen_spatial, whole = [], 1, 1, False, False
    for name, module, shape_in, shape_out in records:
        macs = 0
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs = shape_out[1:].numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs = module.in_features * module.out_features
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) and not whole:
            k, s = _pair(module.kernel_size), _pair(module.stride)
            d = _pair(getattr(module, "dilation", 1))
            rf, jump, seen_spatial = rf + (k - 1) * d * jump, jump * s, True
            whole = shape_out[-1] == 1 and shape_out[-2] == 1
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)) or (
                isinstance(module, nn.Linear) and seen_spatial):
            whole = True
        if whole:
            rf = max(rf, INPUT[-1])  # every output sees the whole image (at least)
        layers.append(Layer(name, type(module).__name__, tuple(shape_out[1:]), macs, rf if seen_spatial else None))
    params = sum(p.numel() for p in model.parameters())
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return Anatomy(params, sum(layer.macs for layer in layers), round(weights / 1024, 1), tuple(layers))
