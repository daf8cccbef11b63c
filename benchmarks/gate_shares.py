"""How often the gate's two tests reject the same development digits, and what choosing them together would cost.

    python -m benchmarks.gate_shares --data-dir ../shared/data

The digit detector and each reader have a threshold chosen on the development digits to reject 1% of them each
(``training.detector``, ``--calibrate``). Served together (``analysis.gate``) they reject the union. For V1-V3
this prints, on development data only, the share rejected of each development digit set and of the development
non-digits: as committed (1% each), and with the detector at 0.5% and the reader's threshold chosen so that the
two together reject 1% of the reader's development digits. No test set is read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import data_utils
import zoo
from analysis import calibration, detector, rejection
from analysis.evaluation import probabilities
from core.artifacts import REFERENCE_ROOT
from training.detector import development_sets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    root = p.parse_args().data_dir
    found = detector.load()
    if found is None:
        raise SystemExit("outputs/digit_detector.*: missing; train it with python -m training.detector")
    development, others = development_sets(root)
    sets = {**development, **others}
    gate = {name: found.digit_probability(d) for name, d in sets.items()}
    pooled = torch.cat([gate[name] for name in development])  # the detector's own development digits
    readers = list(calibration.development_digits(root))  # the digits a reader's threshold is chosen on
    for key in ("3", "1", "2"):
        model = zoo.load(key, REFERENCE_ROOT, calibrated=True)
        score = {name: probabilities(model, d).max(1).values for name, d in sets.items()}
        own_gate, own_score = torch.cat([gate[n] for n in readers]), torch.cat([score[n] for n in readers])

        def either(name: str, detector_below: float, reader_below: float) -> float:
            return 100 * float(((gate[name] < detector_below) | (score[name] < reader_below)).float().mean())

        print(f"model {key}, as committed (detector {found.threshold:.3f}, reader {model.reject_below:.3f};"
              " detector + reader = together): " + ", ".join(
                  f"{name} {rejection.rejected(gate[name], found.threshold):.2f}% +"
                  f" {rejection.rejected(score[name], model.reject_below):.2f}% ="
                  f" {either(name, found.threshold, model.reject_below):.2f}%" for name in sets))
        below = rejection.choose_threshold(pooled, rejection.DEVELOPMENT_REJECTED / 2)
        room = rejection.DEVELOPMENT_REJECTED * len(own_score) - float((own_gate < below).sum())
        passed = own_score[own_gate >= below].sort().values
        reader = float(passed[int(room)]) if room > 0 else 0.0
        print(f"model {key}, together 1% (detector {below:.3f}, reader {reader:.3f}): " + ", ".join(
            f"{name} {either(name, below, reader):.2f}%" for name in sets))


if __name__ == "__main__":
    main()
