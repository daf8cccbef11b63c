"""How fast K seeds at once could be on this machine: the per-batch work alone, one seed against K, three ways.

    python -m benchmarks.seeds_bound --seeds 3 --data-dir ../shared/data --json-out benchmarks/results/seeds_bound.json

The per-batch work is what a run repeats for every batch of every seed and cannot share between seeds:
making the batch (``TensorTrainBatches`` with the model's recipe, batch 128, from MNIST's training set)
and one ``loop.TrainStep`` on it (forward, loss, backward, SGD update, the execution layer's ``auto``
backend). Every figure is its median over the measured batches of a child process, after a warm-up:

- ``one seed``: the model alone on every core (what one seed's run does);
- ``stacked``: K seeds as one ``seeds_at_once.SeedStack`` on every core, each seed its own batches
  (what ``--seeds-at-once`` does);
- ``side by side``: P = min(K, cores) processes started together, each the model alone on cores / P
  threads; K seeds' batches then take K / P of their time (with more seeds than cores, counted as if a
  seed could be split between processes: a lower bound). On a machine with fewer cores than seeds this
  is what the cores give when each works for one seed at a single core's rate, with nothing shared and
  no thread waiting on another.

The rounds alternate the three (drift touches all of them). Evaluation, start-up and files are left out:
``bench_seeds.py`` measures whole runs. The last figure says what stacking must beat: K seeds' batches
within 1.5x of one seed's need each process's cores to do a seed's batch faster than they do it for a seed
alone, by the factor printed.
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

import torch

import acceleration
import data_utils
from benchmarks.common import REPO, machine, machine_line
from core.artifacts import atomic_save_json
from core.tables import markdown_table
from model_strategy import get_strategy
from training import loop
from training.seeds_at_once import SeedBatches, SeedStack

TARGET = 1.5  # the goal: K seeds in at most this many times one seed's time
BATCH = 128


def step_ms(model: str, seeds: int, threads: int | None, steps: int, warmup: int, data_dir: str) -> float:
    """Median milliseconds of one batch made and trained on, in this process (``threads`` None: torch's default)."""
    if threads is not None:
        torch.set_num_threads(threads)
    loop.keep_freed_memory()
    strategy = get_strategy(model)
    train = data_utils.load_mnist(data_dir)["train"]
    models, batches = [], []
    for seed in range(1, seeds + 1):
        torch.manual_seed(seed)
        models.append(strategy.get_model("cpu"))
        batches.append(data_utils.TensorTrainBatches(train, BATCH, seed, strategy.recipe.augment))
    net, _ = acceleration.accelerate(models[0] if seeds == 1 else SeedStack(models), "auto")
    source = batches[0] if seeds == 1 else SeedBatches(batches)
    step = loop.TrainStep(net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
    net.train()
    times, epoch = [], 0
    while len(times) < warmup + steps:
        epoch += 1
        it = iter(source.epoch(epoch))
        while len(times) < warmup + steps:
            start = time.perf_counter()
            images, labels = next(it, (None, None))
            if images is None or len(labels) < BATCH:
                break
            step(images, labels)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[warmup:])


def _child(model: str, seeds: int, threads: int | None, steps: int, warmup: int, data_dir: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.seeds_bound", "--child", "--model", model, "--seeds", str(seeds),
           "--steps", str(steps), "--warmup", str(warmup), "--data-dir", data_dir] \
        + (["--threads", str(threads)] if threads else [])
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)


def _read(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, proc.args))} exited {proc.returncode}")
    return float(json.loads(out.strip().splitlines()[-1])["step_ms"])


def summary(record: dict) -> str:
    """The docs' table and the figures that follow from it."""
    k, runs = record["seeds"], record["runs_ms"]
    processes, threads = record["processes"], record["threads_each"]

    def ms(kind: str) -> str:
        return f"{record[kind + '_ms']:.2f} ({min(runs[kind]):.2f}–{max(runs[kind]):.2f})"

    rows = [("one seed, every core", ms("one_seed"), "1.00"),
            (f"{k} seeds stacked (`--seeds-at-once`), every core", ms("stacked"), f"{record['stacked_over_one']:.2f}"),
            (f"{k} seeds side by side: {processes} processes of {threads} thread{'s' if threads > 1 else ''} at once,"
             f" {k} / {processes} of their time per {k} seeds",
             ms("side_by_side"), f"{record['side_by_side_over_one']:.2f}")]
    table = markdown_table(["how", "batch made and trained on (ms), median (rounds' range)",
                            f"{k} seeds' batches / one seed's"], "lrr", rows)
    return (f"Model {record['model']}, augment {record['augment']}, batch {record['batch']}, median of"
            f" {record['steps']} batches per run, "
            f"{record['rounds']} rounds; {machine_line(record['machine'])}.\n\n{table}\n\n"
            f"{k} seeds' batches within {TARGET}× of one seed's would need each "
            f"{'core' if threads == 1 else f'{threads} cores'} to do a seed's batch "
            f"**{record['needed_speedup_per_core']:.2f}×** as fast as {'it does' if threads == 1 else 'they do'}"
            f" one for a seed alone.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="3")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default: the zoo's default data folder)")
    p.add_argument("--json-out", default=None, help="also write the JSON record to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.data_dir = args.data_dir or str(data_utils.default_data_dir())
    if args.child:
        print(json.dumps({"step_ms": step_ms(args.model, args.seeds, args.threads, args.steps, args.warmup,
                                             args.data_dir)}))
        return

    cores = os.cpu_count() or 1
    processes = min(args.seeds, cores)
    threads = cores // processes
    one, stacked, side = [], [], []
    for _ in range(args.rounds):
        one.append(_read(_child(args.model, 1, None, args.steps, args.warmup, args.data_dir)))
        stacked.append(_read(_child(args.model, args.seeds, None, args.steps, args.warmup, args.data_dir)))
        procs = [_child(args.model, 1, threads, args.steps, args.warmup, args.data_dir) for _ in range(processes)]
        side.append(statistics.median(_read(proc) for proc in procs))
    one_ms, stacked_ms, side_ms = statistics.median(one), statistics.median(stacked), statistics.median(side)
    side_over_one = args.seeds * side_ms / processes / one_ms
    augment = get_strategy(args.model).recipe.augment
    record = {"benchmark": "seeds_bound", "model": args.model, "augment": augment, "seeds": args.seeds, "batch": BATCH,
              "steps": args.steps, "rounds": args.rounds, "cores": cores, "processes": processes, "threads_each": threads,
              "machine": machine("cpu"),
              "one_seed_ms": round(one_ms, 2), "stacked_ms": round(stacked_ms, 2), "side_by_side_ms": round(side_ms, 2),
              "runs_ms": {"one_seed": one, "stacked": stacked, "side_by_side": side},
              "stacked_over_one": round(stacked_ms / one_ms, 2), "side_by_side_over_one": round(side_over_one, 2),
              "needed_speedup_per_core": round(side_over_one / TARGET, 2)}
    print(summary(record))
    if args.json_out:
        atomic_save_json(Path(args.json_out), record)


if __name__ == "__main__":
    main()
