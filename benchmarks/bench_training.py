"""Training speed, side by side: the project's pipeline against the classic torchvision one.

    python -m benchmarks.bench_training --epochs 15            # docs/performance.md's figures (about 17 min on 2 cores)
    python -m benchmarks.bench_training --epochs 2 --subset 6000   # a one-minute check
    python -m benchmarks.bench_training --device cuda --pipelines project   # the GPU run

Both pipelines train the same model with the same seed, batch size, augmentation (uniform +-7 deg
rotation, nearest, black fill), optimizer and schedule, each in its own process, one after the
other. Printed: a table and one JSON line with median epoch seconds, images/s, the time ratio,
seconds from process start to the first epoch at >= 99.4% test accuracy, final accuracy, the peak
memory of each run's whole process tree (DataLoader workers included), and the float rate of a
training epoch beside the rate this machine's float32 matrix multiply reaches (its practical peak).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.common import PIPELINES, epoch_summary, machine, matmul_gflops, run_training, training_gflops
from core.artifacts import atomic_save_json
from data_utils import default_data_dir


def combine(runs: list[dict], model: str, peak: float) -> dict:
    """One pipeline's rounds as one row: the median epoch over every epoch of every round, the median of
    the rounds' other times, the largest memory, and each round as it was."""
    def middle(key: str) -> float | None:
        values = [r[key] for r in runs if r[key] is not None]
        return statistics.median(values) if len(values) == len(runs) else None

    median_epoch = statistics.median(s for r in runs for s in r["epochs_s"])
    images_per_s = runs[0]["train_images"] / median_epoch
    rate = training_gflops(model, images_per_s)
    row = {**runs[0], "median_epoch_s": round(median_epoch, 2), "images_per_s": round(images_per_s, 1),
           "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "peak_pss_mb": max(r["peak_pss_mb"] for r in runs),
           "training_gflops": round(rate, 1), "share_of_matmul_peak": round(rate / peak, 3)}
    for key in ("training_s", "to_last_epoch_s", "epochs_wall_s", "time_to_99.4_s", "wall_s"):
        row[key] = middle(key)
    if len(runs) > 1:
        row["rounds"] = runs
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="3")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", default=str(default_data_dir()))
    p.add_argument("--device", default="cpu", help="cpu (docs/performance.md's figures) or cuda")
    p.add_argument("--pipelines", default="project,classic", help=f"comma list of {', '.join(PIPELINES)}")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the pipelines this many times, alternating (project, classic, project, ...), so that the"
                        " machine's drift touches both alike; times are medians over the rounds")
    p.add_argument("--json-out", default=None, help="also write the JSON record to this file")
    args = p.parse_args()

    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "data_dir": args.data_dir,
                "subset": args.subset, "augment": "rotation", "outliers": 0}  # the same work: all the classic pipeline has
    names = args.pipelines.split(",")
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    peak = matmul_gflops(args.device)  # before the runs, alone on the machine
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for name in names:
                folder = Path(tmp) / f"{name}{i}"
                run = run_training(args.model, settings, name, folder, args.device, folder.with_suffix(".log"))
                rounds[name].append({**epoch_summary(run.metrics), "train_images": run.metrics["data"]["train_images"],
                                     "wall_s": round(run.wall_seconds, 1),
                                     "peak_rss_mb": round(run.peak_rss_mb), "peak_pss_mb": round(run.peak_pss_mb),
                                     "epochs_s": [round(e["seconds"], 2) for e in run.metrics["history"]["epochs"]]})
                print(f"{name}, round {i + 1}: median epoch {rounds[name][-1]['median_epoch_s']} s, final"
                      f" {rounds[name][-1]['final_test_acc']:.2f}%", file=sys.stderr, flush=True)
    results = {name: combine(runs, args.model, peak) for name, runs in rounds.items()}

    record = {"benchmark": "training", "device": args.device, "model": args.model, "epochs": args.epochs,
              "batch_size": args.batch_size, "rounds": args.rounds,
              "subset": args.subset, "seed": args.seed, "machine": machine(args.device),
              "matmul_gflops": round(peak, 1), "pipelines": results}
    if {"project", "classic"} <= results.keys():
        record["epoch_time_ratio_project_over_classic"] = round(
            results["project"]["median_epoch_s"] / results["classic"]["median_epoch_s"], 3)
        record["speedup"] = round(results["classic"]["median_epoch_s"] / results["project"]["median_epoch_s"], 2)

    rows = [("pipeline", "median epoch s", "images/s", "all epochs s", "to 99.4% s", "final acc %", "peak RSS MB",
             "peak PSS MB", "wall s")]
    for name, r in results.items():
        rows.append((name, f"{r['median_epoch_s']:.2f}", f"{r['images_per_s']:,.0f}", f"{r['epochs_wall_s']:.1f}",
                     "-" if r["time_to_99.4_s"] is None else f"{r['time_to_99.4_s']:.1f}",
                     f"{r['final_test_acc']:.2f}", f"{r['peak_rss_mb']:,}", f"{r['peak_pss_mb']:,}", f"{r['wall_s']:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    if "speedup" in record:
        print(f"project/classic epoch time: {record['epoch_time_ratio_project_over_classic']} ({record['speedup']}x faster)")
    print(json.dumps(record))
    if args.json_out:
        atomic_save_json(Path(args.json_out), record)


if __name__ == "__main__":
    main()
