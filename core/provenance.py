"""What a record needs to be trusted and rerun: code version, command, software, machine, compute path.

``environment()`` is the one description of where a run or benchmark ran, used by the metrics JSON and
the benchmark records alike.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# Environment variables that change what a run computes or how fast; recorded when set.
SWITCHES = ("MNIST_ZOO_NATIVE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
            "CUBLAS_WORKSPACE_CONFIG")


@functools.cache
def git_state() -> dict:
    """The checkout's commit and whether tracked files differ from it; unknown outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def device_name(device: str) -> str:
    """The CPU's model name, or the GPU's."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def command_line(argv: list[str] | None = None) -> list[str]:
    """``sys.argv``, a script of this repository named from the repository's root: a record says what ran, not
    which folder it was checked out into (a worktree, a home directory)."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        script = Path(argv[0])
        if script.is_absolute() and script.resolve().is_relative_to(REPO):
            argv[0] = script.resolve().relative_to(REPO).as_posix()
    return argv


def environment(device: str = "cpu", backend: str | None = None, cuda_graph: bool | None = None) -> dict:
    """Code version, argv, software versions, machine, the acceleration backend and CUDA-graph use."""
    return {
        "git": git_state(),
        "argv": command_line(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "device": device,
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "backend": backend,
        "cuda_graph": cuda_graph,
        "switches": {name: os.environ[name] for name in SWITCHES if name in os.environ},
    }
