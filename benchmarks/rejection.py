"""How well each model says "not a digit", measured on test sets only, through ``--predict``'s own path.

    python -m benchmarks.rejection --data-dir ../shared/data

Each committed model (``--root``: another folder holding ``outputs/``) reads, as ``main.py --predict`` reads a file
(cleaned once, split into digits when the ink is a row of them, its calibration and threshold applied):

- MNIST's 10,000 test digits: the share answered "not a digit", and the accuracy on the digits it answers;
- SEMEION's 1,593 digits of other writers (as its 16x16 scans are handed to ``--predict``): the share rejected;
- the test non-digits of ``analysis.rejection`` (letters of other typefaces and of handwriting fonts Debian
  packages, photo crops, zigzag scribbles, noise, blank pages): the share rejected, per kind;

the AUROC of its digit score between MNIST's test digits and all the test non-digits, its accuracy and expected
calibration error on MNIST's test set and SEMEION (batched, calibrated). ``1+2+3`` is the ensemble of V1-V3
(``--model 1,2,3 --predict``), measured next to its members. Nothing here chooses
anything: the thresholds come from ``--calibrate`` (development data). Writes ``benchmarks/results/rejection.json``;
docs/predict.md's "Not a digit" table is made from it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import data_utils
import model_strategy
import zoo
from analysis import detector, external, rejection
from benchmarks.common import machine
from core.artifacts import REFERENCE_ROOT, atomic_save_json
from deploy import predict, reading

RESULTS = Path(__file__).resolve().parent / "results" / "rejection.json"


def reader(key: str, root: Path) -> torch.nn.Module:
    """A model calibrated with its threshold, or for "1+2+3" the ensemble of those models."""
    if "+" in key:
        return zoo.ensemble(key.split("+"), out_dir=root)
    strategy = model_strategy.get_strategy(key)
    return predict.calibrated(model_strategy.load_trained(key, root).eval(), root, strategy.stem)


def measure(key: str, root: Path, non_digits: dict[str, list[torch.Tensor]],
            semeion: tuple[list[torch.Tensor], torch.Tensor] | None, test: data_utils.MNISTTensors,
            semeion_prepared: tuple[torch.Tensor, torch.Tensor] | None, into_metrics: bool = False) -> dict:
    """One row of the table; ``into_metrics``: a single model's numbers read too, and its record kept in its
    metrics JSON under ``root`` as ``main.py --model KEY --evaluate-reading --out-dir ROOT`` keeps it."""
    keep = into_metrics and "+" not in key
    row = reading.measure(reader(key, root), test.images, test.labels, non_digits, semeion, semeion_prepared,
                          numbers_per_kind=zoo.READING_NUMBERS if keep else 0)
    if keep:
        zoo.keep_reading(key, root, root, row)
    return {"model": key, **row}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--models", default=",".join([*model_strategy.available_models(), "1+2+3"]),
                   help="models, and ensembles as KEY+KEY+... (default: every model and the ensemble of V1-V3)")
    p.add_argument("--root", type=Path, default=REFERENCE_ROOT, help="the folder holding outputs/ (default: the reference)")
    p.add_argument("--json-out", type=Path, default=RESULTS)
    p.add_argument("--into-metrics", action="store_true", help="also read each single model's numbers and keep its"
                   " record in its metrics JSON under --root, as main.py --model KEY --evaluate-reading --out-dir ROOT"
                   " does: one run for the table and every model's record")
    args = p.parse_args()
    test = data_utils.load_mnist(args.data_dir)["test"]
    try:
        semeion = external.semeion_pages(str(args.data_dir))
        semeion_prepared = external.prepared_semeion(str(args.data_dir))
    except external.ExternalDataError:
        semeion = semeion_prepared = None
    non_digits = rejection.test_non_digits()
    if (left_out := rejection.without_handwriting_fonts()) is not None:
        print(f"benchmarks.rejection: {left_out}", file=sys.stderr)
    rows = []
    with detector.remembering():  # every reader's pieces meet the same detector: each judged once
        for key in args.models.split(","):
            rows.append(measure(key, args.root, non_digits, semeion, test, semeion_prepared, args.into_metrics))
            r = rows[-1]
            print(f"{key}: threshold {r['threshold']:.3f}; MNIST test rejected {r['mnist_rejected']:.2f}%, accepted"
                  f" read right {reading.accepted_read_right(r)}; SEMEION rejected"
                  f" {r.get('semeion_rejected', float('nan')):.2f}%; non-digits rejected {r['non_digits_rejected']:.1f}%"
                  " (" + ", ".join(f"{k} {v:.1f}%" for k, v in r["non_digits"].items()) + f"); AUROC {r['auroc']:.4f}"
                  f" ({r['seconds']:.0f} s)", flush=True)
    atomic_save_json(args.json_out, {"benchmark": "rejection", "sets": {k: len(v) for k, v in non_digits.items()},
                                     "rows": rows, "machine": machine(), "detector": detector.load() is not None,
                                     "command": "python -m benchmarks.rejection --data-dir ../shared/data"
                                                + (" --into-metrics" if args.into_metrics else "")})


if __name__ == "__main__":
    main()
