"""K seeds at once against K separate runs: wall time and every seed's final accuracy, one benchmark run.

    python -m benchmarks.bench_seeds --seeds 3 --epochs 15 --json-out benchmarks/results/seeds_at_once.json

Separate: ``main.py``'s default run for seeds S..S+K-1 (``--first-seed S``, default 1), each in its own
process, one after the other.
At once: ``main.py --model M --seeds K --seeds-at-once`` in one process (``seeds_at_once.py``).
Side by side (``--ways side-by-side``): ``main.py --model M --seeds K --jobs J``, J = K unless ``--jobs``
says otherwise: the seeds in processes of their own, the cores shared out (at least a thread each).
Each chosen way runs once before the separate runs and once after, so that the machine's drift touches
all of them. Walls are from process start to exit (every file written); the accuracies are the final
epoch's, never a selected one.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, machine, machine_line, run_training
from core.artifacts import atomic_save_json
from core.tables import markdown_table
from data_utils import default_data_dir

WAYS = {"at-once": "at_once", "side-by-side": "side_by_side"}  # --ways name: the record's key


def together(way: str, model: str, seeds: int, settings: dict, out: Path, device: str, jobs: int) -> dict:
    """One leaderboard run of ``seeds`` seeds trained ``way`` (``WAYS``; side by side, ``jobs`` at a time), in
    its own process: its wall time and each seed's final accuracy."""
    flags = ["--jobs", str(jobs)] if way == "side-by-side" else ["--seeds-at-once"]
    cmd = [sys.executable, "main.py", "--model", model, "--seeds", str(seeds), *flags, "--device", device,
           "--out-dir", str(out), *[f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-2000:]}")
    entry = json.loads((out / "outputs" / "leaderboard.json").read_text())["entries"][0]
    return {"wall_s": round(wall, 1), "seeds": entry["seeds"], "final_test_acc": entry["final_test_acc"],
            **({"jobs": jobs} if way == "side-by-side" else {})}


def summary(record: dict) -> str:
    """The docs' table: the separate runs and each way's runs together, wall times and accuracies."""
    rows = [("separate, one after the other", f"{sum(r['wall_s'] for r in record['separate']):.1f}",
             ", ".join(f"{r['wall_s']:.1f}" for r in record["separate"]),
             ", ".join(f"{r['final_test_acc']:.2f}" for r in record["separate"]),
             f"{statistics.mean(r['final_test_acc'] for r in record['separate']):.2f}")]
    ratios = []
    for key in WAYS.values():
        if not record.get(key):
            continue
        name = key.replace("_", " ")
        jobs = f" (`--jobs {record[key][0]['jobs']}`)" if "jobs" in record[key][0] else ""
        for i, r in enumerate(record[key], 1):
            rows.append((f"{name}{jobs}, run {i}", f"{r['wall_s']:.1f}", "-",
                         ", ".join(f"{a:.2f}" for a in r["final_test_acc"]), f"{statistics.mean(r['final_test_acc']):.2f}"))
        ratios.append(f"{name.capitalize()} / one separate seed (median walls): **{record[key + '_over_one_seed']:.2f}×**;"
                      f" {name} / all separate: {record[key + '_over_separate']:.2f}×.")
    table = markdown_table(["how", "wall (s)", "wall per seed (s)", "final test acc per seed (%)", "mean (%)"],
                           "lrrrr", rows)
    return (f"Model {record['model']}, seeds {record['seeds']}, {record['epochs']} epochs;"
            f" {machine_line(record['machine'])}.\n\n{table}\n\n" + " ".join(ratios))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="3")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images (a quick check)")
    p.add_argument("--data-dir", default=str(default_data_dir()))
    p.add_argument("--device", default="cpu")
    p.add_argument("--ways", default="at-once", help=f"comma list of {', '.join(WAYS)} (default: at-once)")
    p.add_argument("--jobs", type=int, default=None, help="side by side: seeds at a time (default: all of them)")
    p.add_argument("--json-out", default=None, help="also write the JSON record to this file")
    args = p.parse_args()
    ways = [w for w in args.ways.split(",") if w]
    if not ways or any(w not in WAYS for w in ways):
        p.error(f"--ways takes a comma list of {', '.join(WAYS)}")

    settings = {"epochs": args.epochs, "data_dir": args.data_dir, "seed": args.first_seed,
                **({"subset": args.subset} if args.subset else {})}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    record = {"benchmark": "seeds_at_once", "model": args.model, "seeds": f"{seeds[0]}-{seeds[-1]}",
              "epochs": args.epochs, "subset": args.subset, "device": args.device, "machine": machine(args.device),
              "separate": [], **{WAYS[w]: [] for w in ways}}
    with tempfile.TemporaryDirectory() as tmp:
        for way in ways:
            record[WAYS[way]].append(together(way, args.model, args.seeds, settings, Path(tmp) / f"{way}0", args.device,
                                              args.jobs or args.seeds))
        for seed in seeds:
            run = run_training(args.model, {**settings, "seed": seed}, "project", Path(tmp) / f"seed{seed}", args.device)
            record["separate"].append({"seed": seed, "wall_s": round(run.wall_seconds, 1),
                                       "final_test_acc": run.metrics["summary"]["final_test_acc"]})
            print(f"seed {seed} alone: {run.wall_seconds:.1f} s", file=sys.stderr, flush=True)
        for way in ways:
            record[WAYS[way]].append(together(way, args.model, args.seeds, settings, Path(tmp) / f"{way}1", args.device,
                                              args.jobs or args.seeds))
    for key in (WAYS[w] for w in ways):
        wall = statistics.median(r["wall_s"] for r in record[key])
        record[f"{key}_over_one_seed"] = round(wall / statistics.median(r["wall_s"] for r in record["separate"]), 2)
        record[f"{key}_over_separate"] = round(wall / sum(r["wall_s"] for r in record["separate"]), 2)
    print(summary(record))
    if args.json_out:
        atomic_save_json(Path(args.json_out), record)


if __name__ == "__main__":
    main()
