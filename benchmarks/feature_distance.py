"""The gate's score discounted by the Mahalanobis distance in the digit detector's features
(``analysis.feature_distance``), against the score as served, on development data only.

    python -m benchmarks.feature_distance --data-dir ../shared/data [--weights 0,0.5,1,2] [--fit 20000]

The distance is fitted on ``--fit`` digits drawn (seed 0) from the detector's own training digits
(``training.detector``: MNIST's training writers but those held out, the training fonts, PENDIGITS' and MFEAT's
even rows); its scale is the development digits' median distance. For each weight (0: the served score), with the
committed detector and V3 calibrated, the threshold is chosen again at 1% of the development digits, and printed
are the figures ``benchmarks.detector_candidates`` prints for the adoption rule: the AUROC, the plain mean of the
six kinds of development non-digits rejected and each, the held-out MNIST writers and PENDIGITS' odd rows
rejected, the two development sets stored as SEMEION stores its digits (judged at several widths, as served), and
the seven other hands' letters, each prepared whole as ``--predict`` prepares one image (``digits.prepare.mnistify``;
a file's reading may also cut one into pieces). No test set is read; nothing is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import data_utils
import zoo
from analysis import detector, rejection
from analysis.evaluation import probabilities
from analysis.feature_distance import FeatureDistance, discounted
from benchmarks.detector_candidates import PEN
from core.arguments import plainly
from core.artifacts import REFERENCE_ROOT
from digits.prepare import mnistify
from training.detector import DATA_ERRORS, development_sets, held_out_writers, semeion_format_sets, training_digits


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--weights", default="0,0.5,1,2", help="comma list of the distance's weights (0: as served)")
    p.add_argument("--fit", type=int, default=20000, help="training digits the distance is fitted on")
    args = p.parse_args(argv)
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            p.error(f"--weights: {args.weights!r} is not a comma list of numbers")
        missing = rejection.missing_handwriting_fonts(rejection.FONT_DIR, rejection.DEVELOPMENT_HANDWRITING_FONTS)
        if missing:
            p.error(f"the development handwriting fonts are not installed: apt-get install {' '.join(missing)} (Debian)")
        found = detector.load()
        if found is None:
            p.error(f"{detector.paths()[0]}: no digit detector (python -m training.detector)")
        v3 = zoo.load("3", REFERENCE_ROOT, calibrated=True)
        letters = torch.stack([mnistify(g) for g in rejection.handwriting_letters(
            rejection.FONT_DIR, rejection.DEVELOPMENT_HANDWRITING_FONTS)])
        development, others = development_sets(args.data_dir)
        pen = others.pop(PEN)
        held = held_out_writers(args.data_dir)[0].float() / 255
        stored = semeion_format_sets(development, held)
        train, labels = training_digits(args.data_dir)[:2]
        pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:args.fit]
        fitted = FeatureDistance.fit(found.nets, train[pick], labels[pick])

        def measured(x: torch.Tensor, stretched: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            return (rejection.scores(probabilities(v3, x), found.digit_probability(x, stretched)),
                    fitted.distance(found.nets, x, stretched))

        digits = {name: measured(x) for name, x in development.items()}
        kinds = {name.removeprefix("development "): measured(x) for name, x in others.items()}
        extra = {"held-out writers": measured(held), "PENDIGITS odd rows": measured(pen),
                 **{name.removesuffix(" as SEMEION stores them (development)") + ", SEMEION's format": measured(*pair)
                    for name, pair in stored.items()},
                 "other hands' letters (prepared whole)": measured(letters)}
        scale = float(torch.cat([d for _, d in digits.values()]).median())
        print(f"fitted on {len(pick):,} training digits; the development digits' median distance {scale:.3f}")
        for weight in weights:
            score = {name: discounted(s, d, scale, weight) for name, (s, d) in {**digits, **kinds, **extra}.items()}
            chosen = torch.cat([score[name] for name in digits])
            threshold = rejection.choose_threshold(chosen)
            rates = {name: rejection.rejected(score[name], threshold) for name in kinds}
            auroc = rejection.auroc(chosen, torch.cat([score[name] for name in kinds]))
            print(f"weight {weight:g}: threshold {threshold:.4f}, AUROC {auroc:.5f}, mean of six "
                  f"{sum(rates.values()) / len(rates):.2f}% (" + ", ".join(f"{k} {v:.2f}%" for k, v in rates.items())
                  + "); " + ", ".join(f"{k} {rejection.rejected(score[k], threshold):.2f}%" for k in extra), flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
