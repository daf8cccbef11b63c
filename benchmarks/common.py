"""Shared by the benchmarks: the two pipelines, one training run in a child process, machine facts.

Each run is its own process so that its memory (workers included) and its clock are its own.
"""
from __future__ import annotations

import json
import os
import platform
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
    "project": ["--loader", "tensor"],
    "classic": ["--loader", "torchvision", "--backend", "none"],
}


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


def run_training(main_args: list[str], pipeline: str, out_dir: Path | None, log: Path | None = None) -> ChildRun:
    """Run ``benchmarks/run_one.py`` (main.py plus the pipeline's flags) and sample its process tree's memory.

    ``out_dir=None`` writes into the repository's own folders, like main.py without ``--out-dir``.
    """
    cmd = [sys.executable, str(REPO / "benchmarks" / "run_one.py"), *main_args, *PIPELINES[pipeline]]
    if out_dir is not None:
        cmd += ["--out-dir", str(out_dir)]
    out_dir = REPO if out_dir is None else out_dir
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
    model = main_args[main_args.index("--model") + 1]
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


def machine() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    facts = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
             "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts
