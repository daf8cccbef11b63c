"""A trained detector against the committed one, on development data only: the figures the adoption rule reads.

    python -m benchmarks.detector_candidates --data-dir ../shared/data [--candidates-only] [/tmp/longer /tmp/mined ...]

Each detector (the committed one first, then each folder given, as ``training.detector --out-dir`` writes it) is
served with the committed V3, its threshold chosen again at 1% of the development digits
(``analysis.rejection.choose_threshold``): printed are the AUROC of the gate's score, development digits
against the development letters, objects, scribbles, shapes, straight strokes and photo crops, the plain mean
of those six kinds' rejection and each, the share rejected of the held-out MNIST writers, of PENDIGITS' odd rows,
of each development digit set and of two stored as SEMEION stores its digits (``semeion_format_sets``), of the
six kinds of non-digits stored so too (what judging a stretched bitmap at several widths costs), and
the seven other hands' letters (``benchmarks.other_hands``) read as ``--predict`` reads a file. A candidate's
readers are not calibrated with it; nothing is written. No test set is read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import data_utils
import zoo
from analysis import detector, external, rejection
from analysis.evaluation import probabilities
from core.arguments import plainly
from core.artifacts import REFERENCE_ROOT
from deploy import reading
from digits.prepare import scans_as_read
from training.detector import DATA_ERRORS, development_sets, held_out_writers, semeion_format_sets

PEN = "PENDIGITS odd rows (development)"  # a digit set among development_sets' others


def label(folder: Path) -> str:
    """How a detector's line begins: its folder, or "committed" for the repository's own (whose absolute path names
    only the checkout it ran in)."""
    return "committed" if Path(folder).resolve() == Path(REFERENCE_ROOT).resolve() else str(folder)


def measure(folder: Path, v3: torch.nn.Module, sets: tuple, letters: list) -> str:
    """One detector's line."""
    found = detector.load(folder)
    development, others, held, stored, stored_kinds = sets
    others = dict(others)
    pen = others.pop(PEN)
    score = lambda x, stretched=None: rejection.scores(probabilities(v3, x), found.digit_probability(x, stretched))  # noqa: E731
    digits = {name: score(x) for name, x in development.items()}
    kinds = {name.removeprefix("development "): score(x) for name, x in others.items()}
    threshold = rejection.choose_threshold(torch.cat(list(digits.values())))
    rates = {name: rejection.rejected(s, threshold) for name, s in kinds.items()}
    auroc = rejection.auroc(torch.cat(list(digits.values())), torch.cat(list(kinds.values())))
    previous = detector.ROOT
    detector.ROOT = folder  # the gate --predict applies, with this detector and its threshold
    try:
        v3.reject_below = threshold
        said = reading.read_all(v3, letters)
    finally:
        detector.ROOT = previous
    other_hands = 100 * sum(s.verdict == "not a digit" for s in said) / len(said)
    return (f"{label(folder)}: threshold {threshold:.4f}, AUROC {auroc:.5f}, mean of six {sum(rates.values()) / len(rates):.2f}%"
            f" ({', '.join(f'{k} {v:.2f}%' for k, v in rates.items())}); other hands' letters {other_hands:.1f}%;"
            f" digits rejected: held-out writers {rejection.rejected(score(held), threshold):.2f}%, PENDIGITS odd rows"
            f" {rejection.rejected(score(pen), threshold):.2f}%, "
            + ", ".join(f"{k} {rejection.rejected(s, threshold):.2f}%" for k, s in digits.items())
            + "; in SEMEION's format: " + ", ".join(f"{k.removesuffix(' as SEMEION stores them (development)')}"
                                                      f" {rejection.rejected(score(*pair), threshold):.2f}%"
                                                      for k, pair in stored.items())
            + "; non-digits in SEMEION's format (judged at their stored width / at several, as served): " + ", ".join(
                f"{k.removeprefix('development ')} {rejection.rejected(score(pair[0]), threshold):.2f}% /"
                f" {rejection.rejected(score(*pair), threshold):.2f}%" for k, pair in stored_kinds.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("candidates", nargs="*", type=Path, help="folders holding outputs/digit_detector.* to compare")
    p.add_argument("--candidates-only", action="store_true",
                   help="leave out the committed detector's line (nothing here is random: a run without candidates prints"
                        " it, the same each time)")
    args = p.parse_args(argv)
    if args.candidates_only and not args.candidates:
        p.error("--candidates-only: name at least one candidate folder")
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        for folder in args.candidates:
            if not detector.paths(folder)[0].is_file():
                p.error(f"{detector.paths(folder)[0]}: no detector there (python -m training.detector --out-dir {folder})")
        missing = rejection.missing_handwriting_fonts(rejection.FONT_DIR, rejection.DEVELOPMENT_HANDWRITING_FONTS)
        if missing:
            p.error(f"the development handwriting fonts are not installed: apt-get install {' '.join(missing)} (Debian)")
        letters = [letter for _, letter in rejection.named_handwriting_letters(
            rejection.FONT_DIR, rejection.DEVELOPMENT_HANDWRITING_FONTS)]
        development, others = development_sets(args.data_dir)
        held = held_out_writers(args.data_dir)[0].float() / 255
        stored_kinds = {name: scans_as_read(external.binary_scans(x)) for name, x in others.items() if name != PEN}
        sets = (development, others, held, semeion_format_sets(development, held), stored_kinds)
        for folder in ([] if args.candidates_only else [REFERENCE_ROOT]) + args.candidates:
            print(measure(folder, zoo.load("3", REFERENCE_ROOT, calibrated=True), sets, letters), flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
