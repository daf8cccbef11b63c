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
from collections import OrderedDict

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
        return self._after_conv(self[0](x))

    def _after_conv(self, y: Tensor) -> Tensor:
        _, relu, bn, drop = self
        if not self.training or y.device.type != "cpu" or dense_layout(y) is None or _hooked(relu, bn, drop):
            return drop(bn(relu(y)))
        momentum = _count_batch(bn)
        if self.native and ops.tileable(y):
            positions = drop_positions(y.numel(), drop.p)
            out, _, _, new_mean, new_var = ops.run(ops.relu_bn_drop, y, bn.weight, bn.bias, bn.running_mean,
                                                   bn.running_var, momentum, bn.eps, 1.0 / (1.0 - drop.p), positions)
            _set_running_stats(bn, new_mean, new_var)
            return out
        return ReluBatchNormDrop.apply(y, bn.weight, bn.bias, bn.running_mean, bn.running_var, momentum, bn.eps,
                                       drop.p)

    def through_pointwise_pool(self, x: Tensor, pointwise: PointwiseConvPool) -> Tensor:
        """``pointwise(self(x))``, as one kernel after the convolution where ``ops.relu_bn_drop_pointwise_pool``
        takes it (the block's output and its gradient are never written); otherwise the two in turn."""
        y = self[0](x)
        _, _, bn, drop = self
        if not (self.native and self.training and ops.block_pointwise_poolable(y, pointwise.weight)):
            return pointwise(self._after_conv(y))
        momentum = _count_batch(bn)
        positions = drop_positions(y.numel(), drop.p)
        out, *_, new_mean, new_var = ops.run(ops.relu_bn_drop_pointwise_pool, y, bn.weight, bn.bias, bn.running_mean,
                                             bn.running_var, momentum, bn.eps, 1.0 / (1.0 - drop.p), positions,
                                             pointwise.weight)
        _set_running_stats(bn, new_mean, new_var)
        return out


def _hooked(*modules: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks for m in modules)


def _count_batch(bn: nn.BatchNorm2d) -> float:
    """Count a training batch as nn.BatchNorm2d does; the momentum for it (None: the cumulative average)."""
    bn.num_batches_tracked.add_(1)
    return bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)


def _set_running_stats(bn: nn.BatchNorm2d, mean: Tensor, var: Tensor) -> None:
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


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


class FusedSequential(nn.Sequential):
    """A Sequential in which a native conv block followed by a ``PointwiseConvPool`` runs as one kernel after
    the block's convolution while training (``FusedConvBlock.through_pointwise_pool``). Same children and
    ``state_dict``; with a hook on any module of the pair, or in evaluation, the children run in turn.
    """

    def __init__(self, sequential: nn.Sequential) -> None:
        super().__init__(OrderedDict(sequential.named_children()))
        self.train(sequential.training)

    def forward(self, x: Tensor) -> Tensor:
        modules, i = list(self), 0
        while i < len(modules):
            if i + 1 < len(modules) and fusable_pair(modules[i], modules[i + 1]) and self.training \
                    and not _hooked(modules[i + 1], *modules[i].modules()):
                x, i = modules[i].through_pointwise_pool(x, modules[i + 1]), i + 2
            else:
                x, i = modules[i](x), i + 1
        return x


def fusable_pair(block: nn.Module, pointwise: nn.Module) -> bool:
    """A native conv block and the fused 1x1 conv + pool right after it: what ``FusedSequential`` runs as one."""
    return isinstance(block, FusedConvBlock) and block.native and type(pointwise) is PointwiseConvPool


def has_fusable_pair(sequential: nn.Sequential) -> bool:
    """Whether ``accelerate`` should make ``sequential`` a ``FusedSequential``."""
    return any(fusable_pair(a, b) for a, b in zip(sequential, list(sequential)[1:]))
