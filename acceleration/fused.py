"""Fused modules that ``accelerate`` swaps in: same children and state_dict as the stock layers they replace.

``FusedConvBlock`` runs conv -> ReLU -> BatchNorm2d -> Dropout with the last three as one step while
training on a CPU: the C kernel (``ops.relu_bn_drop``) or, as fallback and test reference, the same
fusion from PyTorch ops (``ReluBatchNormDrop``). On the tiny nets' 24x24 and 26x26 activations each
pass over memory costs about as much as a small convolution, and the fused forms make several fewer.
Dropout keeps its distribution: the dropped positions are drawn directly (``drop_positions``), which at
the tiny nets' p = 0.01-0.025 costs far less than one Bernoulli draw per activation. Evaluation, other
devices and hooks on a child run the children in order.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from acceleration import ops

# Below this rate, drawing only the dropped positions beats one random draw per activation.
SPARSE_DROPOUT_MAX_P = 0.1
# The CPU's channels-last batch-norm kernels are fast only for channel counts in whole vectors.
CHANNELS_LAST_BN_MULTIPLE = 16


def drop_positions(n: int, p: float) -> Tensor:
    """Positions in [0, n) of an i.i.d. Bernoulli(p) process, sampled as geometric gaps between drops.

    Exactly the distribution of drawing one Bernoulli(p) per element, from about ``p * n`` draws
    instead of ``n`` (uses the default generator, so ``torch.manual_seed`` governs it).
    """
    expected = n * p
    chunk = int(expected + 6 * math.sqrt(expected) + 16)
    pieces, last = [], -1
    while last < n:
        # trials to the next drop, >= 1: 1 + floor(log(1-U) / log(1-p)) is Geometric(p) exactly, and vectorized
        u = torch.rand(chunk, dtype=torch.float64)
        gaps = torch.log1p(u.neg_()).div_(math.log1p(-p)).floor_().add_(1).long()
        positions = gaps.cumsum_(0).add_(last)
        pieces.append(positions)
        last = int(positions[-1])
    positions = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return positions[:int(torch.searchsorted(positions, n))]  # increasing, so cut at the first >= n


def _zero_at(t: Tensor, positions: Tensor) -> None:
    """Zero a dense tensor's storage at ``positions``, in place (a third of ``t[...] = 0``'s cost)."""
    t.as_strided((t.numel(),), (1,)).index_put_((positions,), t.new_zeros(()))


def dense_layout(t: Tensor) -> torch.memory_format | None:
    """The memory format a dense 4-D tensor is stored in (default layout wins where both hold), or None."""
    if t.dim() == 4 and t.is_contiguous():
        return torch.contiguous_format
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


class ReluBatchNormDrop(torch.autograd.Function):
    """ReLU, training-mode batch norm and sparse dropout from PyTorch ops, in as few passes as they allow.

    Dropout's 1/(1-p) is folded into the batch norm's affine; the dropped positions are zeroed in place
    in the output and in the incoming gradient's copy. The batch norm runs in the default layout for
    channel counts PyTorch's channels-last kernel is slow for. Output channels-last; the input's
    gradient comes back in the input's layout.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,  # noqa: ANN001
                running_var: Tensor, momentum: float, eps: float, p: float) -> Tensor:
        scale = 1.0 / (1.0 - p)
        layout = torch.contiguous_format if x.shape[1] % CHANNELS_LAST_BN_MULTIPLE else torch.channels_last
        r = torch.clamp_min(x, 0, out=torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=layout))
        out, mean, invstd = torch.ops.aten.native_batch_norm(r, weight * scale, bias * scale, running_mean,
                                                             running_var, True, momentum, eps)
        positions = drop_positions(out.numel(), p)
        _zero_at(out, positions)
        ctx.save_for_backward(r, weight, mean, invstd, positions)
        ctx.scale, ctx.eps, ctx.layout, ctx.input_layout = scale, eps, layout, dense_layout(x)
        return out.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        r, weight, mean, invstd, positions = ctx.saved_tensors
        grad = grad.clone(memory_format=ctx.layout)  # ours to zero in place; the caller's stays intact
        _zero_at(grad, positions)
        dr, dw, db = torch.ops.aten.native_batch_norm_backward(
            grad, r, weight * ctx.scale, None, None, mean, invstd, True, ctx.eps, [True, True, True])
        dx = torch.ops.aten.threshold_backward.grad_input(dr, r, 0, grad_input=dr)  # ReLU's backward, in place
        return dx.contiguous(memory_format=ctx.input_layout), dw * ctx.scale, db * ctx.scale, *[None] * 5


def is_conv_block(module: nn.Module) -> bool:
    """conv -> ReLU -> affine BatchNorm2d with running stats -> Dropout with a small rate: what fuses."""
    if not isinstance(module, nn.Sequential) or len(module) != 4:
        return False
    conv, relu, bn, drop = module
    return (type(conv) is nn.Conv2d and type(relu) is nn.ReLU and type(bn) is nn.BatchNorm2d
            and type(drop) is nn.Dropout and bn.affine and bn.track_running_stats
            and 0 < drop.p <= SPARSE_DROPOUT_MAX_P)


class FusedConvBlock(nn.Sequential):
    """A conv block whose ReLU, batch norm and dropout run fused while training on a CPU."""

    def __init__(self, block: nn.Sequential, native: bool) -> None:
        super().__init__(*block)
        self.native = native

    def forward(self, x: Tensor) -> Tensor:
        conv, relu, bn, drop = self
        y = conv(x)
        hooked = any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in (relu, bn, drop))
        if not self.training or y.device.type != "cpu" or dense_layout(y) is None or hooked:
            return drop(bn(relu(y)))
        bn.num_batches_tracked.add_(1)  # as nn.BatchNorm2d counts; momentum None is its cumulative average
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        if self.native and ops.tileable(y):
            positions = drop_positions(y.numel(), drop.p)
            out, _, _, new_mean, new_var = ops.run(ops.relu_bn_drop, y, bn.weight, bn.bias, bn.running_mean,
                                                   bn.running_var, momentum, bn.eps, 1.0 / (1.0 - drop.p), positions)
            with torch.no_grad():
                bn.running_mean.copy_(new_mean)
                bn.running_var.copy_(new_var)
            return out
        return ReluBatchNormDrop.apply(y, bn.weight, bn.bias, bn.running_mean, bn.running_var, momentum, bn.eps,
                                       drop.p)


def is_plain_2x2_pool(module: nn.Module) -> bool:
    def pair(v: int | tuple[int, int]) -> tuple[int, int]:
        return (v, v) if isinstance(v, int) else tuple(v)

    return (type(module) is nn.MaxPool2d and pair(module.kernel_size) == (2, 2) and pair(module.stride) == (2, 2)
            and pair(module.padding) == (0, 0) and pair(module.dilation) == (1, 1) and not module.ceil_mode
            and not module.return_indices)


def is_pointwise_conv(module: nn.Module) -> bool:
    """A 1x1 convolution without bias, stride 1 and no padding: a per-pixel matrix product."""
    return (type(module) is nn.Conv2d and module.kernel_size == (1, 1) and module.stride == (1, 1)
            and module.padding == (0, 0) and module.dilation == (1, 1) and module.groups == 1 and module.bias is None)


class PointwiseConvPool(nn.Conv2d):
    """A 1x1 convolution that also does the 2x2 max-pool which followed it, in one C kernel where it takes
    the input; the pool's own slot becomes ``nn.Identity``. Same parameters and ``state_dict`` keys as the
    convolution; elsewhere (other devices, wide layers, odd sizes) it runs the two in order. Either way
    its output, and what a hook on it sees, is the pooled one.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(conv.in_channels, conv.out_channels, 1, bias=False, device="meta")  # no init, no RNG draw
        self.weight = conv.weight

    def forward(self, x: Tensor) -> Tensor:
        if ops.pointwise_poolable(x, self.weight):
            return ops.run(ops.pointwise_pool, x, self.weight)[0]
        return F.max_pool2d(super().forward(x), 2)


class FusedMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` through the C kernel where it takes the input (bit-identical results)."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.run(ops.max_pool2x2, x)[0] if ops.poolable(x) else super().forward(x)
