"""The C kernels as PyTorch operators (``torch.library.custom_op``), with autograd and fake kernels.

Registered ops: ``mnist_zoo::relu_bn_drop``, ``mnist_zoo::max_pool2x2``, ``mnist_zoo::pointwise_pool``
(1x1 convolution then 2x2 max-pool) and ``mnist_zoo::relu_bn_drop_pointwise_pool`` (the first, then the
third, without writing the block's output), each with its ``_backward``. The dispatcher checks their schemas, the
profiler shows their names, and ``register_fake`` lets tracing tools (``torch.compile``, export) see output
shapes without running C. Each op checks dtype, device and layout up front and raises ``ValueError`` on
anything else. The ops are functional (autograd cannot be registered on an op that mutates its inputs):
``relu_bn_drop`` returns the updated running statistics, and the caller copies them into the batch norm's
buffers. The fused modules call them through ``run``, which skips the dispatcher in eager mode.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor

from acceleration.native import library

CL = torch.channels_last


def _readable(x: Tensor) -> bool:
    """What every kernel reads: a 4-D channels-last float32 tensor on the CPU."""
    return x.dtype == torch.float32 and x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous(memory_format=CL)


def _require(x: Tensor, what: str) -> None:
    if not _readable(x):
        raise ValueError(f"{what} must be a 4-D channels-last float32 CPU tensor, got {x.dtype} {tuple(x.shape)}"
                         f" on {x.device}")


def _vectors(x: Tensor) -> int:
    return _vectors_per_tile(x.numel() // x.shape[1], x.shape[1])


@functools.lru_cache(maxsize=1024)
def _vectors_per_tile(rows: int, channels: int) -> int:
    """The kernel's answer, asked once per shape: a training step asks for the same few every time."""
    return library().call("rbd_vectors_per_tile", rows, channels)


def tileable(x: Tensor) -> bool:
    """Whether the ReLU/BN/dropout kernel can take this activation: readable, in whole tiles of lcm(C, 16) floats."""
    return library() is not None and _readable(x) and x.shape[1] > 0 and _vectors(x) > 0


def poolable(x: Tensor) -> bool:
    """Whether the 2x2 max-pool kernel can take this input: even height and width, channels-last float32 CPU."""
    return library() is not None and _readable(x) and x.numel() > 0 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0


def _register(name: str, kernel: Callable) -> torch.library.CustomOpDef:
    """``kernel`` registered as the CPU op ``mnist_zoo::<name>`` (the schema comes from its annotations)."""
    return torch.library.custom_op(f"mnist_zoo::{name}", mutates_args=(), device_types="cpu")(kernel)


def _backward(ctx, op: Callable, kernel: Callable) -> Callable:  # noqa: ANN001
    """The backward to call from a gradient formula: the kernel itself under ``eager`` (``run``), the
    registered op where a tracer recorded the forward as an op."""
    return kernel if getattr(ctx, "eager", False) else op


def _eager(name: str, kernel: Callable, setup_context: Callable, gradient: Callable) -> type[torch.autograd.Function]:
    """A plain ``autograd.Function`` over an op's own kernel, context setup and gradient formula."""

    def forward(ctx, *inputs):  # noqa: ANN001, ANN002, ANN202
        output = kernel(*inputs)
        setup_context(ctx, inputs, output)
        ctx.eager = True
        return output

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(gradient)})


_EAGER: dict[torch.library.CustomOpDef, type[torch.autograd.Function]] = {}
_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)  # torch < 2.3: never


def run(op: torch.library.CustomOpDef, *args: object) -> object:
    """``op(*args)``, the way that costs least: through the dispatcher while ``torch.compile`` or ``export``
    traces (they need the registered op), otherwise through a plain ``autograd.Function`` over the same
    kernel, setup and gradient, which skips the dispatcher's several Python round trips per call."""
    if _compiling():
        return op(*args)
    return _EAGER[op].apply(*args)


# --------------------------------------------------------------------------- ReLU -> batch norm -> dropout


def _relu_bn_drop(x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor,
                  momentum: float, eps: float, scale: float,
                  positions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """dropout(batch_norm(relu(x))) with the dropped storage ``positions`` and scale ``scale`` = 1/(1-p).

    Returns the output (channels-last), the batch mean and 1/std per channel, and the running mean and
    variance after this batch (nn.BatchNorm2d's rule: unbiased variance, ``momentum``).
    """
    _require(x, "relu_bn_drop input")
    if _vectors(x) == 0:
        raise ValueError(f"relu_bn_drop: {tuple(x.shape)} cannot be walked in whole tiles")
    out = torch.empty_like(x, memory_format=CL)
    mean, invstd = x.new_empty(x.shape[1]), x.new_empty(x.shape[1])
    w, b = weight.detach().contiguous(), bias.detach().contiguous()
    new_mean, new_var = running_mean.clone(), running_var.clone()  # the kernel updates these in place
    if library().call("rbd_forward", x, out, x.numel() // x.shape[1], x.shape[1], w, b, scale, eps, momentum,
                      new_mean, new_var, mean, invstd, positions, positions.numel()):
        raise RuntimeError(f"relu_bn_drop kernel failed on an input of shape {tuple(x.shape)} (out of memory)")
    return out, mean, invstd, new_mean, new_var


relu_bn_drop = _register("relu_bn_drop", _relu_bn_drop)


@relu_bn_drop.register_fake
def _(x, weight, bias, running_mean, running_var, momentum, eps, scale, positions):  # noqa: ANN001, ANN202
    c = x.shape[1]
    return (torch.empty_like(x, memory_format=CL), x.new_empty(c), x.new_empty(c), torch.empty_like(running_mean),
            torch.empty_like(running_var))


def _relu_bn_drop_backward(grad: Tensor, x: Tensor, weight: Tensor, scale: float, mean: Tensor, invstd: Tensor,
                           positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``relu_bn_drop`` for its input (channels-last), batch-norm weight and bias."""
    _require(x, "relu_bn_drop_backward input")
    grad = grad.contiguous(memory_format=CL)
    dx, dw, db = torch.empty_like(x, memory_format=CL), x.new_empty(x.shape[1]), x.new_empty(x.shape[1])
    if library().call("rbd_backward", grad, x, dx, x.numel() // x.shape[1], x.shape[1], weight.detach().contiguous(),
                      scale, mean, invstd, positions, positions.numel(), dw, db):
        raise RuntimeError(f"relu_bn_drop kernel failed on a gradient of shape {tuple(grad.shape)} (out of memory)")
    return dx, dw, db


relu_bn_drop_backward = _register("relu_bn_drop_backward", _relu_bn_drop_backward)


@relu_bn_drop_backward.register_fake
def _(grad, x, weight, scale, mean, invstd, positions):  # noqa: ANN001, ANN202
    return torch.empty_like(x, memory_format=CL), x.new_empty(x.shape[1]), x.new_empty(x.shape[1])


def _relu_bn_drop_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, weight, _, _, _, _, _, scale, positions = inputs
    _, mean, invstd, new_mean, new_var = output
    ctx.save_for_backward(x, weight, mean, invstd, positions)
    ctx.mark_non_differentiable(mean, invstd, new_mean, new_var)
    ctx.scale = scale


def _relu_bn_drop_grad(ctx, grad, *_statistics_grads):  # noqa: ANN001, ANN002, ANN202
    x, weight, mean, invstd, positions = ctx.saved_tensors
    dx, dw, db = _backward(ctx, relu_bn_drop_backward, _relu_bn_drop_backward)(grad, x, weight, ctx.scale, mean,
                                                                               invstd, positions)
    return dx, dw, db, None, None, None, None, None, None


relu_bn_drop.register_autograd(_relu_bn_drop_grad, setup_context=_relu_bn_drop_setup)
_EAGER[relu_bn_drop] = _eager("relu_bn_drop", _relu_bn_drop, _relu_bn_drop_setup, _relu_bn_drop_grad)


# --------------------------------------------------------------------------- 2x2 max-pool


def _max_pool2x2(x: Tensor) -> tuple[Tensor, Tensor]:
    """2x2, stride-2 max-pool (PyTorch's rule: first max, NaN wins) and each output's winner (0-3, uint8)."""
    if not poolable(x):
        raise ValueError(f"max_pool2x2 input must be a 4-D channels-last float32 CPU tensor of even height and"
                         f" width, got {x.dtype} {tuple(x.shape)} on {x.device}")
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=CL)
    which = torch.empty((n, c, h // 2, w // 2), dtype=torch.uint8, memory_format=CL)
    if library().call("mp_forward", x, out, which, n, h, w, c):
        raise RuntimeError(f"max_pool2x2 kernel failed on an input of shape {tuple(x.shape)} (out of memory)")
    return out, which


max_pool2x2 = _register("max_pool2x2", _max_pool2x2)


@max_pool2x2.register_fake
def _(x):  # noqa: ANN001, ANN202
    n, c, h, w = x.shape
    return (x.new_empty((n, c, h // 2, w // 2)).contiguous(memory_format=CL),
            x.new_empty((n, c, h // 2, w // 2), dtype=torch.uint8).contiguous(memory_format=CL))


def _max_pool2x2_backward(grad: Tensor, which: Tensor) -> Tensor:
    """The input's gradient (channels-last): each window's winner gets its output's gradient."""
    n, c, ho, wo = grad.shape
    grad = grad.contiguous(memory_format=CL)
    dx = torch.empty((n, c, 2 * ho, 2 * wo), dtype=grad.dtype, memory_format=CL)
    if library().call("mp_backward", grad, which, dx, n, 2 * ho, 2 * wo, c):
        raise RuntimeError(f"max_pool2x2 kernel failed on a gradient of shape {tuple(grad.shape)} (out of memory)")
    return dx


max_pool2x2_backward = _register("max_pool2x2_backward", _max_pool2x2_backward)


@max_pool2x2_backward.register_fake
def _(grad, which):  # noqa: ANN001, ANN202
    n, c, ho, wo = grad.shape
    return grad.new_empty((n, c, 2 * ho, 2 * wo)).contiguous(memory_format=CL)


def _max_pool_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    ctx.save_for_backward(output[1])
    ctx.mark_non_differentiable(output[1])


def _max_pool_grad(ctx, grad, _which_grad):  # noqa: ANN001, ANN202
    (which,) = ctx.saved_tensors
    return _backward(ctx, max_pool2x2_backward, _max_pool2x2_backward)(grad, which)


max_pool2x2.register_autograd(_max_pool_grad, setup_context=_max_pool_setup)
_EAGER[max_pool2x2] = _eager("max_pool2x2", _max_pool2x2, _max_pool_setup, _max_pool_grad)


# --------------------------------------------------------------------------- 1x1 convolution -> 2x2 max-pool

POINTWISE_MAX_CHANNELS = 16  # the kernel holds one pixel's input and output channels in one vector each


def pointwise_poolable(x: Tensor, weight: Tensor) -> bool:
    """Whether the fused 1x1-conv + max-pool kernel takes this input and weight (at most 16 channels each)."""
    c, k = x.shape[1] if x.dim() == 4 else 0, weight.shape[0]
    return (library() is not None and _readable(x) and x.numel() > 0 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0
            and 0 < c <= POINTWISE_MAX_CHANNELS and 0 < k <= POINTWISE_MAX_CHANNELS
            and tuple(weight.shape) == (k, c, 1, 1) and weight.dtype == torch.float32 and weight.device.type == "cpu")


def _matrix(weight: Tensor) -> Tensor:
    """A (K, C, 1, 1) weight as its dense (K, C) matrix: both of its layouts hold it in the same order."""
    return weight.detach().reshape(weight.shape[0], weight.shape[1]).contiguous()


def _pointwise_pool(x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """max_pool2d(conv2d(x, weight), 2) for a (K, C, 1, 1) weight, and each output's winner (0-3, uint8)."""
    if not pointwise_poolable(x, weight):
        raise ValueError(f"pointwise_pool takes a 4-D channels-last float32 CPU input of even height and width and a"
                         f" (K, C, 1, 1) weight, C and K at most {POINTWISE_MAX_CHANNELS}; got"
                         f" {x.dtype} {tuple(x.shape)} on {x.device} and {tuple(weight.shape)}")
    n, c, h, w = x.shape
    k = weight.shape[0]
    out = torch.empty((n, k, h // 2, w // 2), dtype=x.dtype, memory_format=CL)
    which = torch.empty((n, k, h // 2, w // 2), dtype=torch.uint8, memory_format=CL)
    if library().call("pp_forward", x, _matrix(weight), out, which, n, h, w, c, k):
        raise RuntimeError(f"pointwise_pool kernel failed on an input of shape {tuple(x.shape)}")
    return out, which


pointwise_pool = _register("pointwise_pool", _pointwise_pool)


@pointwise_pool.register_fake
def _(x, weight):  # noqa: ANN001, ANN202
    n, _, h, w = x.shape
    k = weight.shape[0]
    return (x.new_empty((n, k, h // 2, w // 2)).contiguous(memory_format=CL),
            x.new_empty((n, k, h // 2, w // 2), dtype=torch.uint8).contiguous(memory_format=CL))


def _pointwise_pool_backward(grad: Tensor, which: Tensor, x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of ``pointwise_pool`` for its input (channels-last) and weight."""
    n, c, h, w = x.shape
    k = weight.shape[0]
    pooled = (n, k, h // 2, w // 2)
    if not pointwise_poolable(x, weight) or tuple(grad.shape) != pooled or tuple(which.shape) != pooled:
        raise ValueError(f"pointwise_pool_backward: a gradient and winners of shape {pooled} for an input of shape"
                         f" {tuple(x.shape)}, got {tuple(grad.shape)} and {tuple(which.shape)}")
    grad = grad.contiguous(memory_format=CL)
    dx = torch.empty_like(x, memory_format=CL)
    dw = weight.new_empty((k, c))
    if library().call("pp_backward", grad, which, x, _matrix(weight), dx, dw, n, h, w, c, k):
        raise RuntimeError(f"pointwise_pool kernel failed on a gradient of shape {tuple(grad.shape)} (out of memory)")
    return dx, dw.view(k, c, 1, 1)


pointwise_pool_backward = _register("pointwise_pool_backward", _pointwise_pool_backward)


@pointwise_pool_backward.register_fake
def _(grad, which, x, weight):  # noqa: ANN001, ANN202
    return torch.empty_like(x, memory_format=CL), weight.new_empty(weight.shape)


def _pointwise_pool_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, weight = inputs
    ctx.save_for_backward(output[1], x, weight)
    ctx.mark_non_differentiable(output[1])


def _pointwise_pool_grad(ctx, grad, _which_grad):  # noqa: ANN001, ANN202
    which, x, weight = ctx.saved_tensors
    return _backward(ctx, pointwise_pool_backward, _pointwise_pool_backward)(grad, which, x, weight)


pointwise_pool.register_autograd(_pointwise_pool_grad, setup_context=_pointwise_pool_setup)
_EAGER[pointwise_pool] = _eager("pointwise_pool", _pointwise_pool, _pointwise_pool_setup, _pointwise_pool_grad)



# --------------------------------------------------------------------------- ReLU -> BN -> dropout -> 1x1 conv -> 2x2 max-pool


def block_pointwise_poolable(x: Tensor, weight: Tensor) -> bool:
    """Whether the fused block + 1x1-conv + max-pool kernel takes this conv output and 1x1 weight."""
    return pointwise_poolable(x, weight) and _vectors(x) > 0


def _relu_bn_drop_pointwise_pool(x: Tensor, bn_weight: Tensor, bn_bias: Tensor, running_mean: Tensor,
                                 running_var: Tensor, momentum: float, eps: float, scale: float, positions: Tensor,
                                 weight: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """max_pool2d(conv2d(relu_bn_drop(x, ...), weight), 2) without writing relu_bn_drop's output.

    Returns the pooled output and its winners (as ``pointwise_pool``), the dropped positions as bits
    (two bytes per pixel), the per-channel affine (a, b) that made the block's output, the batch mean and
    1/std, and the running mean and variance after this batch (as ``relu_bn_drop``).
    """
    if not block_pointwise_poolable(x, weight):
        raise ValueError(f"relu_bn_drop_pointwise_pool takes a 4-D channels-last float32 CPU input of even height and"
                         f" width and a (K, C, 1, 1) weight, C and K at most {POINTWISE_MAX_CHANNELS}; got"
                         f" {x.dtype} {tuple(x.shape)} on {x.device} and {tuple(weight.shape)}")
    n, c, h, w = x.shape
    k = weight.shape[0]
    mean, invstd, a, b = (x.new_empty(c) for _ in range(4))
    new_mean, new_var = running_mean.clone(), running_var.clone()  # the kernel updates these in place
    if library().call("rbd_statistics", x, n * h * w, c, bn_weight.detach().contiguous(), bn_bias.detach().contiguous(),
                      scale, eps, momentum, new_mean, new_var, mean, invstd, a, b):
        raise RuntimeError(f"relu_bn_drop_pointwise_pool kernel failed on an input of shape {tuple(x.shape)}")
    out = torch.empty((n, k, h // 2, w // 2), dtype=x.dtype, memory_format=CL)
    which = torch.empty((n, k, h // 2, w // 2), dtype=torch.uint8, memory_format=CL)
    bits = torch.empty(2 * n * h * w, dtype=torch.uint8)
    if library().call("rbdpp_forward", x, a, b, positions, positions.numel(), _matrix(weight), out, which, bits,
                      n, h, w, c, k):
        raise RuntimeError(f"relu_bn_drop_pointwise_pool kernel failed on an input of shape {tuple(x.shape)}"
                           f" (a dropped position outside it?)")
    return out, which, bits, a, b, mean, invstd, new_mean, new_var


relu_bn_drop_pointwise_pool = _register("relu_bn_drop_pointwise_pool", _relu_bn_drop_pointwise_pool)


@relu_bn_drop_pointwise_pool.register_fake
def _(x, bn_weight, bn_bias, running_mean, running_var, momentum, eps, scale, positions, weight):  # noqa: ANN001, ANN202
    n, c, h, w = x.shape
    k = weight.shape[0]
    return (x.new_empty((n, k, h // 2, w // 2)).contiguous(memory_format=CL),
            x.new_empty((n, k, h // 2, w // 2), dtype=torch.uint8).contiguous(memory_format=CL),
            x.new_empty(2 * n * h * w, dtype=torch.uint8), *(x.new_empty(c) for _ in range(4)),
            torch.empty_like(running_mean), torch.empty_like(running_var))


def _relu_bn_drop_pointwise_pool_backward(grad: Tensor, which: Tensor, bits: Tensor, x: Tensor, weight: Tensor,
                                          a: Tensor, b: Tensor, bn_weight: Tensor, scale: float, mean: Tensor,
                                          invstd: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``relu_bn_drop_pointwise_pool`` for x (channels-last), the 1x1 weight and the batch norm's
    weight and bias."""
    n, c, h, w = x.shape
    k = weight.shape[0]
    pooled = (n, k, h // 2, w // 2)
    if not block_pointwise_poolable(x, weight) or tuple(grad.shape) != pooled or tuple(which.shape) != pooled \
            or bits.numel() != 2 * n * h * w:
        raise ValueError(f"relu_bn_drop_pointwise_pool_backward: a gradient and winners of shape {pooled} for an input"
                         f" of shape {tuple(x.shape)}, got {tuple(grad.shape)} and {tuple(which.shape)}")
    grad = grad.contiguous(memory_format=CL)
    dx = torch.empty_like(x, memory_format=CL)
    dw, dbn_w, dbn_b = weight.new_empty((k, c)), x.new_empty(c), x.new_empty(c)
    if library().call("rbdpp_backward", grad, which.contiguous(memory_format=CL), x, bits, _matrix(weight), a, b,
                      bn_weight.detach().contiguous(), scale, mean, invstd, dx, dw, dbn_w, dbn_b, n, h, w, c, k):
        raise RuntimeError(f"relu_bn_drop_pointwise_pool kernel failed on a gradient of shape {tuple(grad.shape)}")
    return dx, dw.view(k, c, 1, 1), dbn_w, dbn_b


relu_bn_drop_pointwise_pool_backward = _register("relu_bn_drop_pointwise_pool_backward",
                                                 _relu_bn_drop_pointwise_pool_backward)


@relu_bn_drop_pointwise_pool_backward.register_fake
def _(grad, which, bits, x, weight, a, b, bn_weight, scale, mean, invstd):  # noqa: ANN001, ANN202
    c = x.shape[1]
    return torch.empty_like(x, memory_format=CL), weight.new_empty(weight.shape), x.new_empty(c), x.new_empty(c)


def _rbdpp_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, bn_weight, _, _, _, _, _, scale, _, weight = inputs
    _, which, bits, a, b, mean, invstd, new_mean, new_var = output
    ctx.save_for_backward(which, bits, x, weight, a, b, bn_weight, mean, invstd)
    ctx.mark_non_differentiable(which, bits, a, b, mean, invstd, new_mean, new_var)
    ctx.scale = scale


def _rbdpp_grad(ctx, grad, *_other_grads):  # noqa: ANN001, ANN002, ANN202
    which, bits, x, weight, a, b, bn_weight, mean, invstd = ctx.saved_tensors
    backward = _backward(ctx, relu_bn_drop_pointwise_pool_backward, _relu_bn_drop_pointwise_pool_backward)
    dx, dw, dbn_w, dbn_b = backward(grad, which, bits, x, weight, a, b, bn_weight, ctx.scale, mean, invstd)
    return dx, dbn_w, dbn_b, None, None, None, None, None, None, dw


relu_bn_drop_pointwise_pool.register_autograd(_rbdpp_grad, setup_context=_rbdpp_setup)
_EAGER[relu_bn_drop_pointwise_pool] = _eager("relu_bn_drop_pointwise_pool", _relu_bn_drop_pointwise_pool,
                                             _rbdpp_setup, _rbdpp_grad)
