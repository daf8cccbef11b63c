"""Layers shared by the tiny CNNs (V1-V3)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from models import native

# Below this rate, drawing only the dropped positions beats one random draw per activation.
SPARSE_DROPOUT_MAX_P = 0.1


def drop_positions(n: int, p: float) -> Tensor:
    """Positions in [0, n) of an i.i.d. Bernoulli(p) process, sampled as geometric gaps between drops.

    Exactly the distribution of drawing one Bernoulli(p) per element, from about ``p * n`` draws
    instead of ``n`` (uses the default generator, so ``torch.manual_seed`` governs it).
    """
    expected = n * p
    chunk = int(expected + 6 * math.sqrt(expected) + 16)
    pieces, last = [], -1
    while last < n:
        # trials to the next drop, >= 1: 1 + floor(log(1-U) / log(1-p)) is Geometric(p) exactly, and
        # vectorized (Tensor.geometric_ draws the same distribution element by element, ~1.6x slower here)
        u = torch.rand(chunk, dtype=torch.float64)
        gaps = torch.log1p(u.neg_()).div_(math.log1p(-p)).floor_().add_(1).long()
        positions = gaps.cumsum_(0).add_(last)
        pieces.append(positions)
        last = int(positions[-1])
    positions = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return positions[:int(torch.searchsorted(positions, n))]  # increasing, so cut at the first >= n


def _flat(t: Tensor) -> Tensor:
    """A 1-D view of a dense tensor's storage, in memory order (works for channels_last too)."""
    return t.as_strided((t.numel(),), (1,))


def _zero_at(t: Tensor, positions: Tensor) -> None:
    """Zero a dense tensor's storage at ``positions``, in place (a third of ``t[...] = 0``'s cost here)."""
    _flat(t).index_put_((positions,), t.new_zeros(()))


class _DropAt(torch.autograd.Function):
    """y = x * scale with the given storage positions zeroed; the gradient is masked the same way."""

    @staticmethod
    def forward(ctx, x: Tensor, positions: Tensor, scale: float) -> Tensor:  # noqa: ANN001
        out = x.mul(scale)
        _zero_at(out, positions)
        ctx.save_for_backward(positions)
        ctx.scale, ctx.stride = scale, out.stride()
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        (positions,) = ctx.saved_tensors
        g = torch.empty_strided(grad.shape, ctx.stride, dtype=grad.dtype, device=grad.device)
        torch.mul(grad, ctx.scale, out=g)
        _zero_at(g, positions)
        return g, None, None


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the same distribution, several times cheaper on a CPU for small ``p``.

    On a CPU one Bernoulli draw per activation costs more than the tiny nets' convolutions; with
    p = 0.01-0.025 almost all draws say "keep". So the few dropped positions are drawn directly
    (``drop_positions``). Other devices and larger rates use ``F.dropout``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
        if x.device.type != "cpu" or self.p > SPARSE_DROPOUT_MAX_P or not dense:
            return F.dropout(x, self.p, True, self.inplace)
        return _DropAt.apply(x, drop_positions(x.numel(), self.p), 1.0 / (1.0 - self.p))


# The CPU's channels-last batch-norm kernels are fast only for channel counts in whole vectors.
CHANNELS_LAST_BN_MULTIPLE = 16


class _BatchNormInDefaultLayout(torch.autograd.Function):
    """Training-mode batch norm computed in the default layout, taking and giving channels-last tensors.

    Both directions convert at the boundary, so that every neighbouring op (ReLU's backward, the
    convolutions) sees the layout it was built for and no op mixes two layouts.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,  # noqa: ANN001
                running_var: Tensor, momentum: float, eps: float) -> Tensor:
        xc = x.contiguous()
        out, mean, invstd = torch.ops.aten.native_batch_norm(xc, weight, bias, running_mean, running_var,
                                                             True, momentum, eps)
        ctx.save_for_backward(xc, weight, mean, invstd)
        ctx.eps = eps
        return out.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        xc, weight, mean, invstd = ctx.saved_tensors
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(), xc, weight, None, None, mean, invstd, True, ctx.eps, list(ctx.needs_input_grad[:3]))
        dx = dx.contiguous(memory_format=torch.channels_last) if dx is not None else None
        return dx, dw, db, None, None, None, None


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters and state, results equal to float rounding) minus a slow CPU kernel.

    On a CPU, training-mode batch norm over channels-last activations is several times slower
    when the channel count is not a multiple of 16 (measured on 2 cores, 128x8x26x26: 6.1 ms
    forward and backward, against 0.8 ms in the default layout). Such inputs are normalized in the
    default layout instead (``_BatchNormInDefaultLayout``).
    """

    def forward(self, x: Tensor) -> Tensor:
        if (self.training and self.track_running_stats and self.affine and x.device.type == "cpu"
                and x.dim() == 4 and x.shape[1] % CHANNELS_LAST_BN_MULTIPLE and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last)):
            return _BatchNormInDefaultLayout.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                                                   self.count_batch(), self.eps)
        return super().forward(x)

    def count_batch(self) -> float:
        """Count one more training batch, as ``nn.BatchNorm2d.forward`` does; the running stats' momentum for it."""
        self.num_batches_tracked.add_(1)
        # momentum None means a cumulative moving average, as in nn.BatchNorm2d
        return self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)


class _MaxPool2x2(torch.autograd.Function):
    """2x2, stride-2 max-pool in the C kernel; saves only each window's winner (one byte per output)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: ANN001
        out, which = native.max_pool_forward(x)
        ctx.save_for_backward(which)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        (which,) = ctx.saved_tensors
        return native.max_pool_backward(grad, which)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` (same results), with a C kernel for the tiny nets' 2x2/stride-2 case on a CPU.

    PyTorch's channels-last max-pool costs about four passes over V3's 128x10x24x24 activation on 2
    cores; the kernel (``models/kernels/max_pool2x2.c``) makes one each way. Other settings, layouts
    and devices use ``nn.MaxPool2d``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self._is_plain_2x2() and native.supports_max_pool(x):
            return _MaxPool2x2.apply(x)
        return super().forward(x)

    def _is_plain_2x2(self) -> bool:
        return (_pair(self.kernel_size) == (2, 2) and _pair(self.stride) == (2, 2) and _pair(self.padding) == (0, 0)
                and _pair(self.dilation) == (1, 1) and not self.ceil_mode and not self.return_indices)


def _dense_layout(t: Tensor) -> torch.memory_format | None:
    """The memory format a dense 4-D tensor is stored in (default layout wins where both hold), or None."""
    if t.dim() == 4 and t.is_contiguous():
        return torch.contiguous_format
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


class _ReluBatchNormDrop(torch.autograd.Function):
    """ReLU, training-mode batch norm and sparse dropout over one activation, in as few passes as possible.

    Dropout's 1/(1-p) scale is folded into the batch norm's affine (``w*s``, ``b*s``), so the kept
    activations are written once; the dropped positions are zeroed in place, in the output and in
    the incoming gradient's copy. The batch norm runs in ``layout`` (default for channel counts the
    channels-last kernel is slow for, see ``BatchNorm2d``): the ReLU writes straight into it and the
    gradient's copy is made in it, so a layout change costs no pass of its own on the way in.
    The output is channels-last (what the next convolution wants); the input's gradient comes back
    in the input's layout.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,  # noqa: ANN001
                running_var: Tensor, momentum: float, eps: float, p: float,
                layout: torch.memory_format) -> Tensor:
        scale = 1.0 / (1.0 - p)
        r = torch.clamp_min(x, 0, out=torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=layout))
        out, mean, invstd = torch.ops.aten.native_batch_norm(r, weight * scale, bias * scale, running_mean,
                                                             running_var, True, momentum, eps)
        positions = drop_positions(out.numel(), p)
        _zero_at(out, positions)
        ctx.save_for_backward(r, weight, mean, invstd, positions)
        ctx.scale, ctx.eps, ctx.layout, ctx.input_layout = scale, eps, layout, _dense_layout(x)
        return out.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        r, weight, mean, invstd, positions = ctx.saved_tensors
        grad = grad.clone(memory_format=ctx.layout)  # ours to zero in place; the caller's stays intact
        _zero_at(grad, positions)
        dr, dw, db = torch.ops.aten.native_batch_norm_backward(
            grad, r, weight * ctx.scale, None, None, mean, invstd, True, ctx.eps, [True, True, True])
        dx = torch.ops.aten.threshold_backward.grad_input(dr, r, 0, grad_input=dr)  # ReLU's backward, in place
        return dx.contiguous(memory_format=ctx.input_layout), dw * ctx.scale, db * ctx.scale, *[None] * 6


class _NativeReluBatchNormDrop(torch.autograd.Function):
    """What ``_ReluBatchNormDrop`` computes, in one C kernel per direction (``models/native.py``).

    Takes and gives channels-last activations (the convolutions' layout) and saves only the block's
    input, from which the backward recomputes the ReLU and the normalized values.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,  # noqa: ANN001
                running_var: Tensor, momentum: float, eps: float, p: float) -> Tensor:
        scale = 1.0 / (1.0 - p)
        positions = drop_positions(x.numel(), p)
        out, mean, invstd = native.forward(x, weight, bias, running_mean, running_var, momentum, eps, scale,
                                           positions)
        ctx.save_for_backward(x, weight, mean, invstd, positions)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        x, weight, mean, invstd, positions = ctx.saved_tensors
        dx, dw, db = native.backward(grad, x, weight, ctx.scale, mean, invstd, positions)
        return dx, dw, db, *[None] * 5


class ConvBlock(nn.Sequential):
    """Conv2d, ReLU, BatchNorm2d, Dropout: an ``nn.Sequential`` (same children, names and state_dict).

    Training on a CPU, the last three run as one fused step: the C kernel
    (``_NativeReluBatchNormDrop``) where it is built and the activation is channels-last, else
    ``_ReluBatchNormDrop`` from PyTorch ops. On these nets' 24x24 and 26x26 activations each full
    pass over memory costs about as much as a small convolution, and the fused forms make several
    fewer of them per block and direction. Results equal the modules run one by one up to float
    rounding, and the dropout has the same distribution. Any other case (evaluation, another device,
    hooks on a child, a stock module swapped in) runs the children in order.
    """

    def forward(self, x: Tensor) -> Tensor:
        conv, relu, bn, drop = self
        y = conv(x)
        if not self._fusable(y):
            return drop(bn(relu(y)))
        stats = (bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.count_batch(), bn.eps, drop.p)
        if native.supports(y):
            return _NativeReluBatchNormDrop.apply(y, *stats)
        layout = torch.contiguous_format if y.shape[1] % CHANNELS_LAST_BN_MULTIPLE else torch.channels_last
        return _ReluBatchNormDrop.apply(y, *stats, layout)

    def _fusable(self, y: Tensor) -> bool:
        _, relu, bn, drop = self
        return (self.training and y.device.type == "cpu" and _dense_layout(y) is not None
                and type(relu) is nn.ReLU and type(bn) is BatchNorm2d and type(drop) is Dropout
                and bn.affine and bn.track_running_stats and 0 < drop.p <= SPARSE_DROPOUT_MAX_P
                and not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                            for m in (relu, bn, drop)))


def conv_block(in_ch: int, out_ch: int, dropout: float, padding: int = 0) -> ConvBlock:
    """3x3 convolution without bias, then ReLU, BatchNorm2d and Dropout (the tiny nets' unit)."""
    return ConvBlock(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=padding, bias=False),
        nn.ReLU(),
        BatchNorm2d(out_ch),
        Dropout(dropout),
    )


def stem(dropout: float) -> nn.Sequential:
    """28x28x1 -> 26x26x8 -> 24x24x16 -> 1x1 transition to 10 channels -> max-pool to 12x12x10."""
    return nn.Sequential(
        conv_block(1, 8, dropout),
        conv_block(8, 16, dropout),
        nn.Conv2d(16, 10, kernel_size=1, bias=False),
        MaxPool2d(2),
    )
