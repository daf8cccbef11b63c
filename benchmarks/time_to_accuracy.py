"""Time to accuracy: seconds from process start to the first epoch whose test accuracy reaches 99.4%.

    python -m benchmarks.time_to_accuracy --epochs 8 --seeds 1,2,3 --json-out benchmarks/results/time_to_accuracy.json

Each seed is one run of the project pipeline (``main.py``'s defaults with ``--epochs``, and ``--augment`` when
given instead of the model's recipe), each in its
own process, one after the other, timed from that process's start: importing torch, reading MNIST and
loading the C kernels count. The recipe is fixed before the runs; the test accuracy after each epoch
is only read, never used to stop a run or pick one, and every seed is reported.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import config
from benchmarks.common import epoch_summary, machine, machine_line, run_training
from core.artifacts import atomic_save_json
from core.tables import markdown_table
from data_utils import default_data_dir

THRESHOLD = 99.4


def summary(record: dict) -> str:
    """The docs' table: one row per seed, then the median."""
    rows, reached = [], []
    for seed, r in record["runs"].items():
        time_to = r[f"time_to_{THRESHOLD}_s"]
        if time_to is not None:
            reached.append(time_to)
        rows.append((seed, "not reached" if time_to is None else f"{time_to:.1f}",
                     "-" if time_to is None else str(r[f"epoch_reaching_{THRESHOLD}"]), f"{r['median_epoch_s']:.2f}",
                     f"{r['final_test_acc']:.2f}%"))
    table = markdown_table(["seed", f"s from process start to first epoch ≥ {THRESHOLD}%", "that epoch",
                            "median epoch (s)", "final test acc"], "rrrrr", rows)
    median = f"{statistics.median(reached):.1f} s" if len(reached) == len(rows) else "not reached by every seed"
    augment = record.get("augment", "its recipe at the recorded commit")
    return (f"Model {record['model']}, augment {augment}, {record['epochs']} epochs (OneCycle over them),"
            f" batch {record['batch_size']};"
            f" {machine_line(record['machine'])}.\n\n{table}\n\n"
            f"Median over {len(rows)} seeds: **{median}**.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="3")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seeds", default="1,2,3", help="comma list")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default=str(default_data_dir()))
    p.add_argument("--device", default="cpu")
    p.add_argument("--augment", default=None, help="the augmentation (default: the model's recipe)")
    p.add_argument("--json-out", default=None, help="also write the JSON record to this file")
    args = p.parse_args()

    augment = args.augment or config.resolve(args.model, {}).augment
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds.split(","):
            settings = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": int(seed), "data_dir": args.data_dir,
                        "augment": augment}
            run = run_training(args.model, settings, "project", Path(tmp) / seed, args.device, Path(tmp) / f"{seed}.log")
            runs[seed] = epoch_summary(run.metrics, THRESHOLD)
            print(f"seed {seed}: {runs[seed][f'time_to_{THRESHOLD}_s']} s to {THRESHOLD}%,"
                  f" final {runs[seed]['final_test_acc']:.2f}%", file=sys.stderr, flush=True)
    record = {"benchmark": "time_to_accuracy", "threshold": THRESHOLD, "device": args.device, "model": args.model,
              "augment": augment, "epochs": args.epochs, "batch_size": args.batch_size, "machine": machine(args.device),
              "runs": runs}
    print(summary(record))
    if args.json_out:
        atomic_save_json(Path(args.json_out), record)


if __name__ == "__main__":
    main()
