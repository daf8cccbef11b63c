"""Do a detector's members let through the same non-digits? Development data only.

    python -m benchmarks.member_agreement --data-dir ../shared/data [FOLDER]

The detector under FOLDER (``training.detector --out-dir`` writes one; default: the committed detector) is served
with the committed V3 as the gate serves it, its members joined, and each member alone; every rule's threshold is
chosen at 1% of the development digits, as the gate's is. For each kind of development non-digit
(``training.detector.development_sets``): how many the members together let through, how many members alone would
let each of those through, how many each member alone lets through, and how closely the members' log-odds follow
one another on that kind. A member that makes the others' mistakes adds little to their mean (a fifth member of the
same kind did not: docs/detector.md); one whose mistakes differ may. About five minutes on two cores, before the hour
``benchmarks.detector_candidates`` takes to judge a candidate by the adoption rule. Images are judged in batches,
not read as files; nothing is chosen here, and no test set is read.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

import data_utils
import zoo
from analysis import detector, rejection
from analysis.evaluation import probabilities
from core.arguments import plainly
from core.artifacts import REFERENCE_ROOT
from training.detector import DATA_ERRORS, development_sets


@dataclass(frozen=True)
class Agreement:
    """What the members of a detector say of one kind of non-digit."""

    kind: str
    images: int
    passed: int  # let through by the members together, as served
    passed_by: list[int]  # of those, how many 0, 1, ..., M members alone would let through
    alone: list[int]  # how many each member alone lets through
    correlation: tuple[float, float]  # the least and the most correlated pair of members' log-odds

    def line(self) -> str:
        counts = "/".join(map(str, self.passed_by))
        return (f"{self.kind} ({self.images:,}): the members together let through {self.passed}; of those, let through"
                f" by 0-{len(self.alone)} members alone: {counts}; each alone lets through {', '.join(map(str, self.alone))};"
                f" the members' log-odds correlate {self.correlation[0]:.2f}-{self.correlation[1]:.2f}")


def agreement(kind: str, each: Tensor, top: Tensor, together: Tensor, threshold: float,
              thresholds: list[float]) -> Agreement:
    """``each`` (M, N): every member's digit probability of N non-digits of one kind; ``top`` (N,): the reader's top
    probability; ``together`` (N,): the members' joined digit probability; ``threshold`` the served rule's and
    ``thresholds`` each member's alone, on the score (digit probability times ``top``)."""
    passed = together * top >= threshold
    alone = torch.stack([m * top >= t for m, t in zip(each, thresholds)])  # (M, N)
    voters = alone[:, passed].sum(0)
    odds = torch.logit(each.double(), eps=1e-7)
    pairs = torch.corrcoef(odds)[~torch.eye(len(each), dtype=torch.bool)] if len(each) > 1 else torch.ones(1)
    return Agreement(kind, each.shape[1], int(passed.sum()), [int((voters == k).sum()) for k in range(len(each) + 1)],
                     alone.sum(1).tolist(), (float(pairs.min()), float(pairs.max())))


def measure(folder: Path, v3: torch.nn.Module, development: dict[str, Tensor], others: dict[str, Tensor]) -> list[Agreement]:
    """Each kind of development non-digit's ``Agreement`` under the detector saved in ``folder``."""
    found = detector.load(folder)
    members = [detector.Detector([net], 0.0) for net in found.nets]

    def judged(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        each = torch.stack([m.digit_probability(x) for m in members])
        return each, probabilities(v3, x).max(1).values, found.digit_probability(x)

    digits = torch.cat(list(development.values()))
    each, top, together = judged(digits)
    threshold = rejection.choose_threshold(together * top)
    thresholds = [rejection.choose_threshold(m * top) for m in each]
    return [agreement(name.removeprefix("development "), *judged(x), threshold, thresholds)
            for name, x in others.items() if name.startswith("development ")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("folder", nargs="?", type=Path, default=REFERENCE_ROOT,
                   help="a folder holding outputs/digit_detector.* (default: the committed detector)")
    args = p.parse_args(argv)
    if not detector.paths(args.folder)[0].is_file():
        p.error(f"{detector.paths(args.folder)[0]}: no detector there (python -m training.detector --out-dir {args.folder})")
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        development, others = development_sets(args.data_dir)
        for found in measure(args.folder, zoo.load("3", REFERENCE_ROOT, calibrated=True), development, others):
            print(found.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
