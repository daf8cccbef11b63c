"""The C kernels (``kernels/*.c``): built once per machine with the system compiler, loaded with ctypes.

Why C: ReLU -> batch norm -> dropout and the 2x2 max-pool are memory-bound, and PyTorch runs them in
several passes over each activation where the kernels need one or two each way. Why this way: it needs
only a C compiler with OpenMP and builds in about a second, whereas ``torch.utils.cpp_extension``
compiles against the PyTorch headers (a minute here) and needs ninja. Built with ``-march=native``, so
it is cached per source, compiler and CPU, under ``$XDG_CACHE_HOME/mnist-zoo`` (default ``~/.cache``).

The argument types of every exported function are read from its C prototype (``int name(...) {`` at the
start of a line), never written twice; ``call`` checks each tensor against its pointer's element type,
device and density before handing over its address, so a mismatch raises instead of corrupting memory.

``library()`` is None where the kernels cannot be used: not Linux, PyTorch not on OpenMP, no compiler, a
failed build (warned once), or ``MNIST_ZOO_NATIVE=0`` in the environment.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

SOURCES = tuple(sorted((Path(__file__).parent / "kernels").glob("*.c")))
HEADERS = tuple(sorted((Path(__file__).parent / "kernels").glob("*.h")))  # included by the sources
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
SWITCH = "MNIST_ZOO_NATIVE"

# C parameter types -> how ctypes passes them; pointers -> the tensor dtype they point to
_SCALARS = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "double": ctypes.c_double}
_POINTEES = {"float": torch.float32, "uint8_t": torch.uint8, "int64_t": torch.int64}
_EXPORTED = re.compile(r"^int\s+(\w+)\(([^)]*)\)\s*\{", re.MULTILINE)


def signatures(texts: list[str]) -> dict[str, list[tuple[str, bool]]]:
    """Each exported function's parameters as (C base type, is a pointer), from its prototype."""
    found = {}
    for text in texts:
        for name, params in _EXPORTED.findall(text):
            parsed = []
            for param in params.split(","):
                words = param.replace("*", " * ").split()
                base = [w for w in words[:-1] if w not in ("const", "*")]
                if len(base) != 1 or (base[0] not in _SCALARS and base[0] not in _POINTEES):
                    raise ValueError(f"{name}: cannot pass parameter {param.strip()!r} from Python")
                parsed.append((base[0], "*" in words))
            found[name] = parsed
    return found


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model name and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mnist-zoo"


def _build(compiler: str, texts: list[str]) -> Path:
    """The shared library for these sources, compiler and CPU; compiled unless already cached."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    headers = [header.read_text() for header in HEADERS]
    key = hashlib.sha256("\0".join([*texts, *headers, " ".join(FLAGS), version, _cpu_signature()]).encode())
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


class Kernels:
    """The loaded library and the signatures of its exported functions."""

    def __init__(self, lib: ctypes.CDLL, signature: dict[str, list[tuple[str, bool]]]) -> None:
        self.lib, self.signature = lib, signature
        for name, params in signature.items():
            fn = getattr(lib, name)
            fn.argtypes = [ctypes.c_void_p if pointer else _SCALARS[base] for base, pointer in params]
            fn.restype = ctypes.c_int

    def call(self, name: str, *args: object) -> int:
        """``name(*args)``, tensors passed by address after checking dtype, device and density."""
        params = self.signature[name]
        if len(args) != len(params):
            raise TypeError(f"{name} takes {len(params)} arguments, got {len(args)}")
        values = []
        for i, ((base, pointer), arg) in enumerate(zip(params, args)):
            if pointer:
                if not (isinstance(arg, Tensor) and arg.dtype == _POINTEES[base] and arg.device.type == "cpu"
                        and (arg.is_contiguous() or arg.is_contiguous(memory_format=torch.channels_last))):
                    raise TypeError(f"{name}: argument {i} must be a dense CPU {_POINTEES[base]} tensor")
                values.append(arg.data_ptr())
            else:
                values.append(arg)
        return getattr(self.lib, name)(*values)


@functools.cache
def library() -> Kernels | None:
    """The loaded kernels, or None where they cannot be used (see the module docstring)."""
    if os.environ.get(SWITCH, "1") == "0" or platform.system() != "Linux":
        return None
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None  # the kernels' threads must come from the runtime PyTorch already uses
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    texts = [source.read_text() for source in SOURCES]
    try:
        return Kernels(ctypes.CDLL(str(_build(compiler, texts))), signatures(texts))
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"the C kernels (acceleration/kernels) could not be built ({error}); "
                      f"training uses PyTorch ops instead (slower on a CPU)", RuntimeWarning, stacklevel=2)
        return None
