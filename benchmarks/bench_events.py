"""What TensorBoard events cost a run, side by side: the same run with ``--tensorboard`` and ``--no-tensorboard``.

    python -m benchmarks.bench_events --pairs 3 --data-dir ../shared/data

Each run is ``main.py --model 3 --epochs 2 --subset 12000`` in a process of its own, the two kinds
interleaved. Printed: per kind, the mean of the epochs' seconds, of the first epoch's alone (it ends
before any event is written, so its difference is the machine's drift) and of the run's seconds from its
start (``summary.total_seconds``: the tensorboard import and the writes are in it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import REPO, machine
from data_utils import default_data_dir


def one_run(flag: str, data_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "main.py", "--model", "3", "--epochs", "2", "--subset", "12000", "--data-dir",
                        data_dir, "--out-dir", out, flag], cwd=REPO, check=True, capture_output=True)
        return json.loads((Path(out) / "outputs" / "mnist_model_3_metrics.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--data-dir", default=str(default_data_dir()))
    args = p.parse_args()
    kinds = {"--tensorboard": [], "--no-tensorboard": []}
    for _ in range(args.pairs):
        for flag, records in kinds.items():
            records.append(one_run(flag, args.data_dir))
    print(f"{'run':<17} {'epoch s':>8} {'first epoch s':>14} {'run s':>7}")
    for flag, records in kinds.items():
        epochs = [e["seconds"] for r in records for e in r["history"]["epochs"]]
        first = [r["history"]["epochs"][0]["seconds"] for r in records]
        total = [r["summary"]["total_seconds"] for r in records]
        print(f"{flag:<17} {statistics.mean(epochs):>8.2f} {statistics.mean(first):>14.2f} {statistics.mean(total):>7.2f}")
    print(json.dumps({"benchmark": "events", "machine": machine("cpu"), "pairs": args.pairs}))


if __name__ == "__main__":
    main()
