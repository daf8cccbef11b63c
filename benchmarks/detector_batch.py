"""How fast the committed digit detector judges many digits at each batch size, and that its answers do not change.

    python -m benchmarks.detector_batch --data-dir ../shared/data

Why ``analysis.detector.BATCH`` is what it is: the detector judges whole development sets when its threshold is
chosen (``training.detector``), when a candidate is judged (``benchmarks.detector_candidates``) and when every
reader's threshold is chosen (``benchmarks.calibration``). ``Detector.digit_probability`` times the held-out MNIST
writers' digits (development data; ``--limit`` of them) at each of ``--sizes``, one size after another in each of
``--rounds`` rounds, so that a drift of the machine's speed falls on every size alike. Prints the median seconds
per size, each as a ratio to the first size's, and whether every size gave exactly the first size's answers.
Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import data_utils
from analysis import detector
from core.arguments import number, plainly
from core.artifacts import REFERENCE_ROOT
from training.detector import DATA_ERRORS, held_out_writers

SIZES = (1000, detector.BATCH)  # the default until this benchmark, then the default now


def sizes(text: str) -> tuple[int, ...]:
    """A comma-separated list of batch sizes, each a whole number of at least 1."""
    return tuple(map(number(int, 1), text.split(",")))


def measure(found: detector.Detector, digits: torch.Tensor, batch_sizes: tuple[int, ...],
            rounds: int) -> tuple[dict[int, float], bool]:
    """The median seconds ``found`` takes to judge ``digits`` at each batch size over ``rounds`` interleaved rounds,
    and whether every size's answers equal the first size's exactly."""
    seconds: dict[int, list[float]] = {size: [] for size in batch_sizes}
    answers: dict[int, torch.Tensor] = {}
    for _ in range(rounds):
        for size in batch_sizes:
            start = time.perf_counter()
            answers[size] = found.digit_probability(digits, batch_size=size)
            seconds[size].append(time.perf_counter() - start)
    first = answers[batch_sizes[0]]
    return ({size: statistics.median(s) for size, s in seconds.items()},
            all(torch.equal(answers[size], first) for size in batch_sizes))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--sizes", type=sizes, default=SIZES, help="batch sizes, comma-separated; the first is the"
                   f" reference (default: {','.join(map(str, SIZES))})")
    p.add_argument("--rounds", type=number(int, 1), default=3, metavar="N", help="rounds (default 3)")
    p.add_argument("--limit", type=number(int, 1), default=None, help="judge only the first LIMIT held-out digits")
    args = p.parse_args(argv)
    with plainly(p, *DATA_ERRORS, detector.DetectorError):  # a data file or the detector's files damaged: one line
        found = detector.load(REFERENCE_ROOT)
        if found is None:
            p.error(f"{detector.paths(REFERENCE_ROOT)[0]}: no detector (python -m training.detector)")
        digits = held_out_writers(args.data_dir)[0][:args.limit].float() / 255
    medians, same = measure(found, digits, args.sizes, args.rounds)
    reference = medians[args.sizes[0]]
    print(f"{len(digits):,} held-out writers' digits, {len(found.nets)} members, {torch.get_num_threads()} threads,"
          f" median of {args.rounds} rounds")
    for size, median in medians.items():
        print(f"batch {size}: {median:.2f} s ({median / reference:.2f}x batch {args.sizes[0]}'s)")
    print("answers: " + ("identical at every batch size" if same else "DIFFER between batch sizes"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
