"""Inside a trained model: what each block outputs for one digit, how the prediction is built, which
pixels it rests on, and how every block's activations behave over the whole test set.

A *stage* is a child of the model's top-level ``nn.Sequential`` containers (else a top-level child):
for the tiny nets, each convolution block, the pooling and the head. Feature maps are captured with
forward hooks on the stock model, so what is shown is exactly what the network computes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from data_utils import normalize
from models import anatomy

SATURATED = 0.99  # a softmax this confident counts as saturated


@dataclass
class LayerStats:
    layer: str
    kind: str
    output: str  # shape per image, e.g. 16x10x10
    receptive_field: int | None
    mean: float
    std: float
    zero_fraction: float  # of all values: exactly 0 (after a ReLU)
    dead_channels: int  # channels (or features) that are 0 for every test image
    channels: int


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's stages in order: children of its top-level Sequentials, else its top-level children."""
    found = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential):
            found += [(f"{name}.{sub}", module) for sub, module in child.named_children()]
        else:
            found.append((name, child))
    return found


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf layers that change an activation at inference (dropout and flatten do not)."""
    return [(name, m) for name, m in model.named_modules()
            if not list(m.children()) and not isinstance(m, (nn.Dropout, nn.Flatten))]


def receptive_fields(model: nn.Module) -> dict[str, int | None]:
    """Each stage's and each leaf layer's receptive field (``anatomy``); a stage's is its last layer's."""
    found = anatomy.analyse(model).layers
    result = {layer.name: layer.receptive_field for layer in found}
    for name, _ in stages(model):
        inside = [layer for layer in found if layer.name == name or layer.name.startswith(name + ".")]
        result[name] = inside[-1].receptive_field if inside else None
    return result


def capture(model: nn.Module, batch: Tensor, per_layer: bool = False) -> list[tuple[str, Tensor]]:
    """Every stage's (or, ``per_layer``, every leaf layer's) output for a normalized (N, 1, 28, 28) batch, in
    execution order (eval mode, no gradients)."""
    outputs: list[tuple[str, Tensor]] = []
    hooks = [module.register_forward_hook(lambda m, a, out, name=name: outputs.append((name, out.detach())))
             for name, module in (layers(model) if per_layer else stages(model))]
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def block_outputs(maps: list[tuple[str, Tensor]]) -> list[tuple[str, Tensor]]:
    """The spatial stage outputs that end a block: of consecutive stages with the same output shape (a conv,
    its activation, its norm), the last; 1x1 maps (after global pooling) are left out."""
    spatial = [(name, out) for name, out in maps if out.dim() == 4 and out.shape[-2:].numel() > 1]
    return [item for i, item in enumerate(spatial) if i + 1 == len(spatial) or spatial[i + 1][1].shape != item[1].shape]


def saliency(model: nn.Module, image: Tensor) -> tuple[Tensor, int, Tensor]:
    """For one normalized (1, 28, 28) image: |d logit of the predicted digit / d input| as (28, 28), the
    predicted digit and the softmax. Nothing accumulates in the model's ``.grad``."""
    device = next(model.parameters()).device
    x = image.reshape(1, 1, 28, 28).to(device).requires_grad_(True)
    logits = model.eval()(x)
    predicted = int(logits.argmax(1))
    (grad,) = torch.autograd.grad(logits[0, predicted], x)
    return grad[0, 0].abs().cpu(), predicted, logits.detach().softmax(1)[0].cpu()


def activation_stats(model: nn.Module, images: Tensor, batch_size: int = 1000) -> tuple[list[LayerStats], float]:
    """Per leaf layer over (N, 28, 28) uint8 ``images``: mean, std, share of zeros (after a ReLU: the inactive
    units), channels never active; and the share of images whose softmax is saturated (top probability
    above ``SATURATED``)."""
    fields = receptive_fields(model)
    kinds = {name: type(m).__name__ for name, m in layers(model)}
    sums: dict[str, list] = {}
    confident = 0
    for chunk in images.split(batch_size):
        outs = capture(model, normalize(chunk), per_layer=True)
        for name, out in outs:
            flat = out.flatten(2) if out.dim() == 4 else out[:, :, None]  # (N, C, positions)
            s = sums.setdefault(name, [0.0, 0.0, 0, 0, torch.zeros(flat.shape[1], dtype=torch.bool), tuple(out.shape[1:])])
            s[0] += float(out.double().sum())
            s[1] += float(out.double().pow(2).sum())
            s[2] += int((out == 0).sum())
            s[3] += out.numel()
            s[4] |= (flat != 0).any(2).any(0)
        confident += int((outs[-1][1].softmax(1).max(1).values > SATURATED).sum())
    stats = []
    for name, (total, squares, zeros, count, active, shape) in sums.items():
        mean = total / count
        stats.append(LayerStats(name, kinds[name], "x".join(map(str, shape)), fields.get(name), round(mean, 4),
                                round(max(squares / count - mean * mean, 0.0) ** 0.5, 4), round(zeros / count, 4),
                                int((~active).sum()), len(active)))
    return stats, confident / len(images)


def stats_table(stats: list[LayerStats], saturated: float) -> str:
    rows = [("layer", "kind", "output", "RF", "mean", "std", "zeros", "dead channels")]
    rows += [(s.layer, s.kind, s.output, "-" if s.receptive_field is None else f"{s.receptive_field}x{s.receptive_field}",
              f"{s.mean:.3f}", f"{s.std:.3f}", f"{100 * s.zero_fraction:.1f}%", f"{s.dead_channels}/{s.channels}")
             for s in stats]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines + [f"softmax saturated (top probability > {SATURATED}): {100 * saturated:.1f}% of the test images"])


def stats_record(stats: list[LayerStats], saturated: float) -> dict:
    return {"layers": [asdict(s) for s in stats], "softmax_saturated_fraction": saturated,
            "saturated_means": f"top softmax probability > {SATURATED}"}
