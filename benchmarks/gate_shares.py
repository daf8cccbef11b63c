"""Why the gate multiplies: one score against a threshold on each of the detector and the reader.

    python -m benchmarks.gate_shares --data-dir ../shared/data

For V1-V3 this prints, on development data only, the share rejected of each development digit set and of the
development non-digits under three rules:

- **served**: the detector's digit probability times the reader's calibrated top probability, below the reader's
  committed threshold (1% of the development digits, ``--calibrate``; ``analysis.gate``);
- **two thresholds**: the detector below its own 1% threshold (its record's), or the reader's top probability
  below the threshold chosen on it alone at 1% of the digits temperatures are fitted on (the rule served before);
- **product at the same cost**: the served score with its threshold chosen to reject as many development digits
  as the two thresholds do, so the non-digits it rejects compare at one price.

Two more development digit sets are measured beside them, in SEMEION's format (``external.binary_scans``: each
digit's ink box stretched to 16 x 16 and thresholded, then prepared as ``--predict`` prepares a scan): MFEAT's odd
rows and the held-out MNIST training writers. SEMEION loses more of its digits to the gate than any development
set; these say how much of that its format alone explains, and, served, which digits it costs (those rejected,
counted by their label).

And, for the first two rules, how many of the held-out MNIST training writers' digits (``training.detector``) each
rejects and how many of the rest it reads right; served, the development letters accepted most often.

No test set is read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import data_utils
import zoo
from analysis import calibration, detector, rejection
from analysis.evaluation import probabilities
from core.arguments import plainly
from core.artifacts import REFERENCE_ROOT
from digits import nondigits
from training.detector import DATA_ERRORS, development_sets, held_out_writers, semeion_format_sets

LETTERS = [c for c in nondigits.ALPHABET if c not in nondigits.LIKE_DIGITS]  # each font's letters, in order


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    root = p.parse_args().data_dir
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        found = detector.load()
        if found is None:
            raise SystemExit("outputs/digit_detector.*: missing; train it with python -m training.detector")
        development, others = development_sets(root)
        held, held_labels = held_out_writers(root)
        held = held.float() / 255
        stored = semeion_format_sets(development, held)
        sets = {**development, **others, **{name: digits for name, (digits, _) in stored.items()}}
        stored_labels = dict(zip(stored, (rejection.development_digits(root)[rejection.STRETCHED][1], held_labels)))
        stretched = {name: marks for name, (_, marks) in stored.items()}  # judged at several widths, as served
        detected = {name: found.digit_probability(d, stretched.get(name)) for name, d in sets.items()}
        fitted_on = list(calibration.development_digits(str(root)))  # the digits a reader alone chose its threshold on
        held_detected = found.digit_probability(held)
        for key in ("3", "1", "2"):
            model = zoo.load(key, REFERENCE_ROOT, calibrated=True)
            probs = {name: probabilities(model, d) for name, d in sets.items()}
            top = {name: p.max(1).values for name, p in probs.items()}
            served = {name: rejection.scores(probs[name], detected[name]) for name in sets}
            alone = rejection.choose_threshold(torch.cat([top[n] for n in fitted_on]))
            two = {name: (detected[name] < found.threshold) | (top[name] < alone) for name in sets}
            cost = float(torch.cat([two[n] for n in development]).float().mean())
            same_cost = rejection.choose_threshold(torch.cat([served[n] for n in development]), cost)
            rules = {f"served (score below {model.reject_below:.3f})":
                     {n: rejection.rejected(served[n], model.reject_below) for n in sets},
                     f"two thresholds (detector {found.threshold:.3f}, reader {alone:.3f})":
                     {n: 100 * float(two[n].float().mean()) for n in sets},
                     f"product at the same cost ({100 * cost:.2f}% of the development digits, score below {same_cost:.3f})":
                     {n: rejection.rejected(served[n], same_cost) for n in sets}}
            for rule, shares in rules.items():
                print(f"model {key}, {rule}: " + ", ".join(f"{name} {share:.2f}%" for name, share in shares.items()),
                      flush=True)
            mnist_probs = probabilities(model, held)
            right, mnist_served = mnist_probs.argmax(1) == held_labels, rejection.scores(mnist_probs, held_detected)
            accepted = {"served": mnist_served >= model.reject_below,
                        "two thresholds": (held_detected >= found.threshold) & (mnist_probs.max(1).values >= alone)}
            print(f"model {key}, the held-out MNIST training writers ({len(held):,}), accepted read right: " + ", ".join(
                f"{rule} {100 * float(right[kept].float().mean()):.3f}% ({100 * float((~kept).float().mean()):.2f}%"
                " rejected)" for rule, kept in accepted.items()), flush=True)
            print(f"model {key}, served, rejected in SEMEION's format by digit: " + "; ".join(
                f"{name} " + " ".join(f"{d}:{n}" for d, n in enumerate(torch.bincount(
                    labels[served[name] < model.reject_below], minlength=10).tolist()))
                for name, labels in stored_labels.items()), flush=True)
            passed = (served["development letters"] >= model.reject_below).float().view(-1, len(LETTERS)).mean(0)
            print(f"model {key}, served: the development letters accepted most: " + ", ".join(
                f"{LETTERS[i]} {100 * float(passed[i]):.0f}%" for i in passed.argsort(descending=True)[:8]), flush=True)

if __name__ == "__main__":
    main()
