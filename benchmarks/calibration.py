"""Every committed model calibrated, as ``main.py --model K --calibrate --out-dir .`` does, in one process.

    python -m benchmarks.calibration --data-dir ../shared/data

The development digits (and SEMEION, measured only) are prepared once for all eight models instead of once per
command. Writes each model's ``outputs/<stem>_calibration.json`` (with its threshold of "not a digit"),
``outputs/<stem>_development.safetensors`` and ``plots/<stem>_reliability.png`` into the repository
(the committed reference's folder); docs/predict.md's calibration table is made from them.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import config
import data_utils
import model_strategy
import zoo
from core.arguments import plainly
from core.artifacts import REFERENCE_ROOT
from training.detector import DATA_ERRORS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--models", default=",".join(model_strategy.available_models()))
    args = p.parse_args()
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        for key in args.models.split(","):
            started = time.perf_counter()
            cfg = config.resolve(key, {"data_dir": str(args.data_dir), "out_dir": str(REFERENCE_ROOT)}, "cpu")
            record = zoo.calibrate_saved(cfg, REFERENCE_ROOT)
            eces = ", ".join(f"{s['before']['name']} {s['before']['ece']:.2f}->{s['after']['ece']:.2f}%" for s in record["sets"])
            print(f"{key}: T={record['temperature']:.3f}, reject below {record['reject_below']:.3f}; {eces}"
                  f" ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
