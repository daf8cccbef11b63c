"""Layers shared by the tiny CNNs (V1-V3)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
        gaps = torch.empty(chunk, dtype=torch.float64).geometric_(p).long()  # trials to next drop, >= 1
        positions = gaps.cumsum_(0).add_(last)
        pieces.append(positions)
        last = int(positions[-1])
    positions = torch.cat(pieces)
    return positions[positions < n]


def _flat(t: Tensor) -> Tensor:
    """A 1-D view of a dense tensor's storage, in memory order (works for channels_last too)."""
    return t.as_strided((t.numel(),), (1,))


class _DropAt(torch.autograd.Function):
    """y = x * scale with the given storage positions zeroed; the gradient is masked the same way."""

    @staticmethod
    def forward(ctx, x: Tensor, positions: Tensor, scale: float) -> Tensor:  # noqa: ANN001
        out = x.mul(scale)
        _flat(out)[positions] = 0
        ctx.save_for_backward(positions)
        ctx.scale, ctx.stride = scale, out.stride()
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: ANN001, ANN205
        (positions,) = ctx.saved_tensors
        g = torch.empty_strided(grad.shape, ctx.stride, dtype=grad.dtype, device=grad.device)
        torch.mul(grad, ctx.scale, out=g)
        _flat(g)[positions] = 0
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
            self.num_batches_tracked.add_(1)
            # momentum None means a cumulative moving average, as in nn.BatchNorm2d
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            return _BatchNormInDefaultLayout.apply(x, self.weight, self.bias, self.running_mean, self.running_var,
                                                   momentum, self.eps)
        return super().forward(x)


def conv_block(in_ch: int, out_ch: int, dropout: float, padding: int = 0) -> nn.Sequential:
    """3x3 convolution without bias, then ReLU, BatchNorm2d and Dropout (the tiny nets' unit)."""
    return nn.Sequential(
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
        nn.MaxPool2d(2),
    )
