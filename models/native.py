"""The tiny nets' C kernels (``kernels/*.c``), built once per machine and loaded with ctypes.

Why C: ReLU -> batch norm -> dropout, and the 2x2 max-pool, are memory-bound, and PyTorch runs them in
several passes over each activation (plus layout copies for 8 or 10 channels) where the kernels need one
or two each way: about a fifth of a V3 training step on a 2-core CPU. Why this way: it needs only a C compiler with OpenMP and
builds in about a second, whereas ``torch.utils.cpp_extension`` compiles against the PyTorch headers (a
minute here) and needs ninja. Built with ``-march=native``, so it is cached per source, compiler and CPU,
under ``$XDG_CACHE_HOME/mnist-zoo`` (default ``~/.cache``).

``kernel()`` is None where it cannot be used: not Linux, PyTorch not on OpenMP, no compiler, a failed
build (warned once), or ``MNIST_ZOO_NATIVE=0`` in the environment. Callers then use PyTorch ops.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

SOURCES = tuple(sorted((Path(__file__).parent / "kernels").glob("*.c")))
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
SWITCH = "MNIST_ZOO_NATIVE"


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model name and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-zoo"


def _build(compiler: str) -> Path:
    """The shared library for this source, compiler and CPU; compiled unless already cached."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    texts = [source.read_text() for source in SOURCES]
    key = hashlib.sha256("\0".join([*texts, " ".join(FLAGS), version, _cpu_signature()]).encode())
    target = _cache_dir() / f"kernels-{key.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            done = subprocess.run([compiler, *FLAGS, "-o", partial, *map(str, SOURCES), "-lm"],
                                  capture_output=True, text=True, timeout=300)
            if done.returncode:
                raise OSError(done.stderr.strip() or f"{compiler} exited with {done.returncode}")
            os.replace(partial, target)  # atomic: a concurrent build never loads a half-written file
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return target


_P, _I64, _INT, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double


@functools.cache
def kernel() -> ctypes.CDLL | None:
    """The loaded kernel library, or None where it cannot be used (see the module docstring)."""
    if os.environ.get(SWITCH, "1") == "0" or platform.system() != "Linux":
        return None
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None  # the kernel's threads must come from the runtime PyTorch already uses
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"the C kernels (models/kernels) could not be built ({error}); "
                      f"training uses PyTorch ops instead (slower on a CPU)", RuntimeWarning, stacklevel=2)
        return None
    lib.rbd_vectors_per_tile.argtypes, lib.rbd_vectors_per_tile.restype = [_I64, _INT], _INT
    lib.rbd_forward.argtypes = [_P, _P, _I64, _INT, _P, _P, _D, _D, _D, _P, _P, _P, _P, _P, _I64]
    lib.rbd_backward.argtypes = [_P, _P, _P, _I64, _INT, _P, _D, _P, _P, _P, _I64, _P, _P]
    lib.rbd_forward.restype = lib.rbd_backward.restype = _INT
    lib.mp_forward.argtypes = [_P, _P, _P, _I64, _I64, _I64, _I64]
    lib.mp_backward.argtypes = [_P, _P, _P, _I64, _I64, _I64, _I64]
    lib.mp_forward.restype = lib.mp_backward.restype = _INT
    return lib


def _dense_channels_last(x: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last))


def supports(x: Tensor) -> bool:
    """Whether the ReLU/BN/dropout kernel is available and can take this activation (dense channels-last
    float32 on a CPU, in whole tiles)."""
    lib = kernel() if _dense_channels_last(x) else None
    return lib is not None and lib.rbd_vectors_per_tile(x.numel() // x.shape[1], x.shape[1]) > 0


def supports_max_pool(x: Tensor) -> bool:
    """Whether the 2x2 max-pool kernel is available and can take this activation (dense channels-last
    float32 on a CPU, even height and width)."""
    return (_dense_channels_last(x) and x.numel() > 0 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0
            and kernel() is not None)


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


def forward(x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor, momentum: float,
            eps: float, scale: float, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The block's output (channels-last), and the batch mean and 1/std per channel; updates the running stats."""
    rows, channels = x.numel() // x.shape[1], x.shape[1]
    out = torch.empty_like(x, memory_format=torch.channels_last)
    mean, invstd = x.new_empty(channels), x.new_empty(channels)
    params = [t.detach().contiguous() for t in (weight, bias)]
    status = kernel().rbd_forward(_ptr(x), _ptr(out), rows, channels, _ptr(params[0]), _ptr(params[1]), scale, eps,
                                  momentum, _ptr(running_mean), _ptr(running_var), _ptr(mean), _ptr(invstd),
                                  _ptr(positions), positions.numel())
    if status:
        raise RuntimeError(f"relu_bn_drop kernel failed on an input of shape {tuple(x.shape)} "
                           f"(untileable, or out of memory)")
    return out, mean, invstd


def backward(grad: Tensor, x: Tensor, weight: Tensor, scale: float, mean: Tensor, invstd: Tensor,
             positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients for the block's input (channels-last), batch-norm weight and bias."""
    rows, channels = x.numel() // x.shape[1], x.shape[1]
    grad = grad.contiguous(memory_format=torch.channels_last)
    dx, dw, db = torch.empty_like(x, memory_format=torch.channels_last), x.new_empty(channels), x.new_empty(channels)
    w = weight.detach().contiguous()
    status = kernel().rbd_backward(_ptr(grad), _ptr(x), _ptr(dx), rows, channels, _ptr(w), scale, _ptr(mean),
                                   _ptr(invstd), _ptr(positions), positions.numel(), _ptr(dw), _ptr(db))
    if status:
        raise RuntimeError(f"relu_bn_drop kernel failed on a gradient of shape {tuple(grad.shape)} (out of memory)")
    return dx, dw, db



def max_pool_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """2x2, stride-2 max-pool of a channels-last activation, and each output's winner (0-3) in its window."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=torch.channels_last)
    which = torch.empty((n, c, h // 2, w // 2), dtype=torch.uint8, memory_format=torch.channels_last)
    if kernel().mp_forward(_ptr(x), _ptr(out), _ptr(which), n, h, w, c):
        raise RuntimeError(f"max_pool2x2 kernel failed on an input of shape {tuple(x.shape)} (out of memory)")
    return out, which


def max_pool_backward(grad: Tensor, which: Tensor) -> Tensor:
    """The max-pool input's gradient (channels-last): each window's winner gets its output's gradient."""
    n, c, ho, wo = grad.shape
    grad = grad.contiguous(memory_format=torch.channels_last)
    dx = torch.empty((n, c, 2 * ho, 2 * wo), dtype=grad.dtype, memory_format=torch.channels_last)
    if kernel().mp_backward(_ptr(grad), _ptr(which), _ptr(dx), n, 2 * ho, 2 * wo, c):
        raise RuntimeError(f"max_pool2x2 kernel failed on a gradient of shape {tuple(grad.shape)} (out of memory)")
    return dx
