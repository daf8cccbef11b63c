"""How the gate weighs what it has: the served score against other ways to combine the same networks.

    python -m benchmarks.gate_rules --data-dir ../shared/data

No network is trained: each rule scores the committed detector's members and V3's calibrated probabilities
differently. Served, the score is the mean of the members' digit probabilities times the reader's top probability
(``analysis.gate``). Measured beside it: the members joined by the mean of their log-odds (a geometric mean) or
by the least of them; the detector alone; the reader's two most probable digits in place of its top one (a doubt
between two digits costs nothing); the members' probabilities averaged over test-time views of each image
(its four one-pixel shifts, its turns by 10 degrees either way); and agreement, the detector's probability of
each digit times the reader's, summed (the probability that it is a digit and that the two, independent, name the
same one: the served score where they agree, small where they do not). For each rule the threshold is chosen again at
1% of the development digits, and the line gives what ``benchmarks.detector_candidates`` gives a detector: the
AUROC, development digits against the development non-digits, the plain mean of the six kinds' rejection and
each, the seven other hands' letters (``benchmarks.other_hands``) read as ``--predict`` reads a file, the
held-out MNIST writers, PENDIGITS' odd rows, each development digit set, and two in SEMEION's format — those at
the width they are stored at for every rule (the served gate judges a stretched bitmap at several widths,
``digits.prepare.aspect_views``; ``benchmarks.detector_candidates`` measures that), so that the rules are compared
with one another on them. No test set is read.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import data_utils
import zoo
from analysis import detector, rejection
from analysis.evaluation import probabilities
from core.arguments import plainly
from core.artifacts import REFERENCE_ROOT
from deploy.predict import answer_ink
from digits.prepare import clean
from models.detector import NOT_A_DIGIT
from training.detector import DATA_ERRORS, development_sets, held_out_writers, semeion_format_sets

TURN = 10.0  # degrees, either way


@dataclass(frozen=True)
class Seen:
    """What the networks say of N prepared images."""

    members: Tensor  # (M, N): each member's digit probability
    shifted: Tensor  # (M, N): the same, averaged over the image and its four one-pixel shifts
    turned: Tensor  # (M, N): the same, averaged over the image and its turns by TURN degrees either way
    reading: Tensor  # (N, 10): the reader's calibrated probabilities
    named: Tensor  # (M, N, 10): each member's probability that the image is digit k (summing to its digit probability)

    @property
    def top(self) -> Tensor:
        return self.reading.max(1).values


RULES: dict[str, Callable[[Seen], Tensor]] = {
    "served: the members' mean x the reader's top": lambda s: s.members.mean(0) * s.top,
    "the members' mean log-odds x the reader's top": lambda s: torch.logit(s.members, eps=1e-7).mean(0).sigmoid() * s.top,
    "the least of the members x the reader's top": lambda s: s.members.min(0).values * s.top,
    "the detector alone": lambda s: s.members.mean(0),
    "the members' mean x the reader's two most probable": lambda s: s.members.mean(0) * s.reading.topk(2).values.sum(1),
    "averaged over one-pixel shifts, x the reader's top": lambda s: s.shifted.mean(0) * s.top,
    f"averaged over turns of {TURN:g} degrees, x the reader's top": lambda s: s.turned.mean(0) * s.top,
    "agreement: the members' mean probability of each digit x the reader's, summed": lambda s: (
        s.named.mean(0) * s.reading).sum(1),
}


def _turned(x: Tensor, degrees: float) -> Tensor:
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, (len(x), 1, *x.shape[1:]), align_corners=False)
    return F.grid_sample(x[:, None].float(), grid, align_corners=False)[:, 0]


def seen(found: detector.Detector, reader: torch.nn.Module, x: Tensor) -> Seen:
    """What ``found``'s members and ``reader`` say of (N, 28, 28) prepared images in [0, 1]."""
    each = [detector.Detector([net], 0.0) for net in found.nets]

    def members(views: list[Tensor]) -> Tensor:
        return torch.stack([torch.stack([m.digit_probability(v) for v in views]).mean(0) for m in each])

    shifts = [x, *(torch.roll(x, step, dim) for dim in (1, 2) for step in (1, -1))]
    with torch.no_grad():
        named = torch.stack([torch.cat([net(b).softmax(1)[:, :NOT_A_DIGIT] for b in detector.batches(x, 1000)])
                             for net in found.nets])
    return Seen(members([x]), members(shifts), members([x, _turned(x, -TURN), _turned(x, TURN)]),
                probabilities(reader, x), named)


def line(rule: Callable[[Seen], Tensor], sets: dict[str, dict[str, Seen]], letters: list[tuple[bool, Seen | None]]) -> str:
    """One rule's figures."""
    digits = {name: rule(s) for name, s in sets["development"].items()}
    kinds = {name.removeprefix("development "): rule(s) for name, s in sets["non-digits"].items()}
    threshold = rejection.choose_threshold(torch.cat(list(digits.values())))
    rates = {name: rejection.rejected(s, threshold) for name, s in kinds.items()}
    auroc = rejection.auroc(torch.cat(list(digits.values())), torch.cat(list(kinds.values())))
    letters_rejected = sum(said if pieces is None else float(rule(pieces).min()) < threshold for said, pieces in letters)
    others = {**{name: rule(s) for name, s in sets["other digits"].items()}, **digits}
    return (f"threshold {threshold:.4f}, AUROC {auroc:.5f}, mean of six {sum(rates.values()) / len(rates):.2f}% ("
            + ", ".join(f"{k} {v:.2f}%" for k, v in rates.items())
            + f"); other hands' letters {100 * letters_rejected / len(letters):.1f}%; digits rejected: "
            + ", ".join(f"{k} {rejection.rejected(s, threshold):.2f}%" for k, s in others.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    args = p.parse_args(argv)
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        missing = rejection.missing_handwriting_fonts(rejection.FONT_DIR, rejection.DEVELOPMENT_HANDWRITING_FONTS)
        if missing:
            p.error(f"the development handwriting fonts are not installed: apt-get install {' '.join(missing)} (Debian)")
        found = detector.load()
        if found is None:
            p.error("outputs/digit_detector.*: missing; train it with python -m training.detector")
        v3 = zoo.load("3", REFERENCE_ROOT, calibrated=True)
        development, others = development_sets(args.data_dir)
        held = held_out_writers(args.data_dir)[0].float() / 255
        pen = others.pop("PENDIGITS odd rows (development)")
        stored = {k.removesuffix(" as SEMEION stores them (development)") + " in SEMEION's format": x  # at their stored width
                  for k, (x, _) in semeion_format_sets(development, held).items()}
        look = lambda x: seen(found, v3, x)  # noqa: E731
        sets = {"development": {k: look(x) for k, x in development.items()},
                "non-digits": {k: look(x) for k, x in others.items()},
                "other digits": {"held-out writers": look(held), "PENDIGITS odd rows": look(pen),
                                 **{k: look(x) for k, x in stored.items()}}}
        letters = []
        for _, letter in rejection.named_handwriting_letters(rejection.FONT_DIR, rejection.DEVELOPMENT_HANDWRITING_FONTS):
            said, pieces = answer_ink(v3, "letter", clean(letter))
            letters.append((said.verdict == "not a digit", None if pieces is None else look(pieces)))
        for name, rule in RULES.items():
            print(f"{name}: {line(rule, sets, letters)}", flush=True)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
