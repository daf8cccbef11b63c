"""How fast K seeds at once could be on this machine: training steps alone, one seed against K, three ways.

    python -m benchmarks.seeds_bound --seeds 3 --json-out benchmarks/results/seeds_bound.json

Every figure is the median time of one ``training.TrainStep`` (forward, loss, backward, SGD update; batch 128,
random images, the execution layer's ``auto`` backend) in a child process of its own, after a warm-up:

- ``one seed``: the model alone on every core (what one seed's run does);
- ``stacked``: K seeds as one ``seeds_at_once.SeedStack`` on every core (what ``--seeds-at-once`` does);
- ``side by side``: as many single-thread processes as there are cores, started together, each the model
  alone; K seed-steps then take K / cores of their step time. This is the most the cores give when each
  runs a seed at a single core's rate, with nothing shared and no thread waiting on another.

The rounds alternate the three (drift touches all of them). Augmentation, evaluation and files are
left out: ``bench_seeds.py`` measures whole runs. The last figure says what stacking must beat: a
stacked step within 1.5x of one seed's needs each core to do a seed's step faster than one core does it
for a seed alone, by the factor printed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from artifacts import atomic_save_json
from benchmarks.common import REPO, machine, machine_line
from tables import markdown_table

TARGET = 1.5  # the goal: K seeds in at most this many times one seed's time


def step_ms(model: str, seeds: int, threads: int | None, steps: int, warmup: int, batch: int = 128) -> float:
    """Median milliseconds of one training step, in this process (``threads`` None: torch's default)."""
    import torch  # noqa: PLC0415 - the parent stays light

    import acceleration  # noqa: PLC0415
    import model_strategy  # noqa: PLC0415
    import training  # noqa: PLC0415
    from seeds_at_once import SeedStack  # noqa: PLC0415

    if threads is not None:
        torch.set_num_threads(threads)
    training.keep_freed_memory()
    strategy = model_strategy.get_strategy(model)
    models = []
    for seed in range(1, seeds + 1):
        torch.manual_seed(seed)
        models.append(strategy.get_model("cpu"))
    net, _ = acceleration.accelerate(models[0] if seeds == 1 else SeedStack(models), "auto")
    net.train()
    step = training.TrainStep(net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, seeds, 28, 28, generator=generator).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,) if seeds == 1 else (batch, seeds), generator=generator)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step(images, labels)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _child(model: str, seeds: int, threads: int | None, steps: int, warmup: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.seeds_bound", "--child", "--model", model, "--seeds", str(seeds),
           "--steps", str(steps), "--warmup", str(warmup)] + (["--threads", str(threads)] if threads else [])
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)


def _read(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, proc.args))} exited {proc.returncode}")
    return float(json.loads(out.strip().splitlines()[-1])["step_ms"])


def summary(record: dict) -> str:
    """The README's table and the figures that follow from it."""
    k, cores = record["seeds"], record["cores"]
    rows = [("one seed, every core", f"{record['one_seed_ms']:.2f}", "1.00"),
            (f"{k} seeds stacked (`--seeds-at-once`), every core", f"{record['stacked_ms']:.2f}",
             f"{record['stacked_over_one']:.2f}"),
            (f"{k} seeds side by side, one core each ({cores} processes at once)",
             f"{record['side_by_side_ms']:.2f} per step, {k} / {cores} of it per {k} seed-steps",
             f"{record['side_by_side_over_one']:.2f}")]
    table = markdown_table(["how", "step (ms)", f"{k} seed-steps / one seed's step"], "lrr", rows)
    return (f"Model {record['model']}, batch {record['batch']}, median of {record['steps']} steps per run, "
            f"{record['rounds']} rounds; {machine_line(record['machine'])}.\n\n{table}\n\n"
            f"{k} seeds within {TARGET}× of one seed's step would need each core to run a seed's step "
            f"**{record['needed_speedup_per_core']:.2f}×** as fast as it runs one seed alone.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="3")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json-out", default=None, help="also write the JSON record to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps({"step_ms": step_ms(args.model, args.seeds, args.threads, args.steps, args.warmup)}))
        return

    cores = os.cpu_count() or 1
    one, stacked, side = [], [], []
    for _ in range(args.rounds):
        one.append(_read(_child(args.model, 1, None, args.steps, args.warmup)))
        stacked.append(_read(_child(args.model, args.seeds, None, args.steps, args.warmup)))
        procs = [_child(args.model, 1, 1, args.steps, args.warmup) for _ in range(cores)]
        side.append(statistics.median(_read(proc) for proc in procs))
    one_ms, stacked_ms, side_ms = statistics.median(one), statistics.median(stacked), statistics.median(side)
    side_over_one = args.seeds * side_ms / cores / one_ms
    record = {"benchmark": "seeds_bound", "model": args.model, "seeds": args.seeds, "batch": 128, "steps": args.steps,
              "rounds": args.rounds, "cores": cores, "machine": machine("cpu"),
              "one_seed_ms": round(one_ms, 2), "stacked_ms": round(stacked_ms, 2), "side_by_side_ms": round(side_ms, 2),
              "runs_ms": {"one_seed": one, "stacked": stacked, "side_by_side": side},
              "stacked_over_one": round(stacked_ms / one_ms, 2), "side_by_side_over_one": round(side_over_one, 2),
              "needed_speedup_per_core": round(side_over_one / TARGET, 2)}
    print(summary(record))
    if args.json_out:
        atomic_save_json(Path(args.json_out), record)


if __name__ == "__main__":
    main()
