"""Shared by the benchmarks: the two pipelines, one training run in a child process, machine facts.

Each run is its own process so that its memory (workers included) and its clock are its own.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# project: the zoo's defaults. classic: torchvision Dataset + RandomRotation + DataLoader (2 workers)
# and the model as built (stock layers, default memory layout, no acceleration) - the pipeline users come from.
PIPELINES = {
    "project": {"loader": "tensor"},
    "classic": {"loader": "torchvision", "backend": "none", "augment": "rotation", "outliers": 0},  # all it can do
}


def command_line(model: str, settings: dict) -> str:
    """The ``main.py`` command that runs ``model`` with ``settings``, for the records."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items() if v is not None)
    return f"python main.py --model {model} {flags}"


def _tree_memory_mb(root_pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB summed over ``root_pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    rss = pss = 0.0
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) / 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) / 1024
        except OSError:
            continue
    return rss, pss


# Reading a process tree's smaps_rollup costs ~40 ms of CPU for the classic run's three processes (the
# kernel walks their page tables): at 4 samples/s that took ~15% of a core from the run being measured.
SAMPLE_EVERY_S = 1.0


@dataclass
class ChildRun:
    metrics: dict
    wall_seconds: float
    peak_rss_mb: float
    peak_pss_mb: float


def run_training(model: str, settings: dict, pipeline: str, out_dir: Path | None, device: str = "cpu",
                 log: Path | None = None) -> ChildRun:
    """Run ``python -m benchmarks.run_one`` (one training with ``settings`` plus the pipeline's) and sample its
    process tree's memory. ``out_dir=None`` writes the repository's own folders: the committed reference.
    """
    out_dir = REPO if out_dir is None else out_dir
    settings = {**settings, **PIPELINES[pipeline], "out_dir": str(out_dir)}
    cmd = [sys.executable, "-m", "benchmarks.run_one", model, device, json.dumps(settings)]
    peak = [0.0, 0.0]
    start = time.perf_counter()
    with open(log or os.devnull, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_EVERY_S):
                rss, pss = _tree_memory_mb(proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}" + (f"; see {log}" if log else ""))
    from model_strategy import get_strategy  # noqa: PLC0415 - the parent stays light until here

    metrics = json.loads((out_dir / "outputs" / f"{get_strategy(model).stem}_metrics.json").read_text())
    return ChildRun(metrics, wall, peak[0], peak[1])


def epoch_summary(metrics: dict, threshold: float = 99.4) -> dict:
    """Median epoch time, images/s, final accuracy and the first epoch reaching ``threshold``."""
    epochs = metrics["history"]["epochs"]
    median = statistics.median(e["seconds"] for e in epochs)
    reached = next((e for e in epochs if e["test_acc"] >= threshold), None)
    return {
        "training_s": round(sum(e["seconds"] for e in epochs), 2),  # the training passes alone
        "to_last_epoch_s": round(epochs[-1]["elapsed"], 2),  # process start to the last evaluated epoch
        # first epoch's start to the last one's end: training, every evaluation, checkpoint and metrics write
        "epochs_wall_s": round(epochs[-1]["elapsed"] - epochs[0]["started"], 2) if "started" in epochs[0] else None,
        "median_epoch_s": round(median, 2),
        "images_per_s": round(metrics["data"]["train_images"] / median, 1),
        "final_test_acc": epochs[-1]["test_acc"],
        f"time_to_{threshold}_s": round(reached["elapsed"], 1) if reached else None,
        f"epoch_reaching_{threshold}": reached["epoch"] if reached else None,
    }


def matmul_gflops(device: str = "cpu", size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of float32 matrix multiplication here, the best of ``repeats``: the practical float peak
    (vendor BLAS near its best) that a training step's rate is compared with."""
    import torch  # noqa: PLC0415 - the parent stays light until here

    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = math.inf
    for _ in range(repeats + 1):  # the first warms up
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def training_gflops(model: str, images_per_s: float) -> float:
    """The float rate a training pass runs at: 2 FLOPs per multiply-accumulate, three passes of the
    network's MACs per image (forward, input gradients, weight gradients)."""
    from model_strategy import get_strategy  # noqa: PLC0415
    from models.anatomy import analyse  # noqa: PLC0415

    return 6 * analyse(get_strategy(model).get_model("cpu")).macs * images_per_s / 1e9


def machine_line(m: dict) -> str:
    """A ``machine()`` record in words, for the docs' table captions."""
    return f"{m.get('device_name')}, {m.get('cpu_count')} cores, torch {m['torch']}, {m['date']}"


def machine(device: str = "cpu") -> dict:
    """Where a benchmark ran: ``provenance.environment`` plus the date."""
    from core.provenance import environment  # noqa: PLC0415 - the parent stays light until here

    return {**environment(device), "date": time.strftime("%Y-%m-%d")}
