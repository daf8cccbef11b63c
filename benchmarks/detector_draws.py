"""How far chance moves the figures the detector's rules read: every mix of members from two or more draws.

    python -m benchmarks.detector_draws --data-dir ../shared/data . /tmp/same

Each folder holds a detector as ``training.detector --out-dir`` writes it, the members drawn by one recipe from the
same seeds (the committed one is ``.``). Members of one seed that differ between folders are two draws of that
member; a detector may take either, so the folders give every mix of them (two draws of three seeds: eight
detectors, two of them the folders themselves). Each mix is served with the committed V3 and its threshold chosen
again at 1% of the development digits, as ``benchmarks.detector_candidates`` does (the members joined by their
mean, as served), and printed are the figures its rules read that need no reading of files: the AUROC, the mean of
the six kinds of development non-digits turned away and each, and how many of the held-out MNIST writers' digits and
of PENDIGITS' odd rows are turned away; then their spread over the mixes. The mixes share members, so they are not
independent draws: the spread is a floor on chance, not its measure. Nothing is chosen; no test set is read.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

import data_utils
import zoo
from analysis import detector, rejection
from analysis.evaluation import probabilities
from benchmarks.detector_candidates import PEN
from core.arguments import plainly
from core.artifacts import REFERENCE_ROOT
from training.detector import DATA_ERRORS, development_sets, held_out_writers


def draws(folders: list[Path]) -> dict[int, list[tuple[str, torch.nn.Module]]]:
    """Each seed's distinct members across ``folders``, by seed, each named by the folder it first came from."""
    found: dict[int, list[tuple[str, torch.nn.Module, Tensor]]] = {}
    for folder in folders:
        weights, record = detector.paths(folder)
        nets = detector.members(load_file(str(weights)))
        seeds = [m["seed"] for m in json.loads(record.read_text())["members"]]
        for seed, net in zip(seeds, nets):
            flat = torch.cat([p.detach().flatten() for p in net.state_dict().values()])
            if not any(torch.equal(flat, other) for _, _, other in found.get(seed, [])):
                found.setdefault(seed, []).append((str(folder), net, flat))
    return {seed: [(name, net) for name, net, _ in kept] for seed, kept in sorted(found.items())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("folders", nargs="+", type=Path, help="folders holding outputs/digit_detector.* drawn alike")
    args = p.parse_args(argv)
    with plainly(p, *DATA_ERRORS):  # a data file missing or damaged: one line
        for folder in args.folders:
            if not detector.paths(folder)[0].is_file():
                p.error(f"{detector.paths(folder)[0]}: no detector there (python -m training.detector --out-dir {folder})")
        by_seed = draws(args.folders)
        v3 = zoo.load("3", REFERENCE_ROOT, calibrated=True)
        development, others = development_sets(args.data_dir)
        sets = {**development, **{k: v for k, v in others.items() if k != PEN},
                "held-out writers": held_out_writers(args.data_dir)[0].float() / 255, PEN: others[PEN]}
        top = {name: probabilities(v3, x) for name, x in sets.items()}
        said = {(seed, i): {name: detector.Detector([net], 0.0).digit_probability(x) for name, x in sets.items()}
                for seed, kept in by_seed.items() for i, (_, net) in enumerate(kept)}
        print("draws of each seed: " + "; ".join(f"seed {seed}: " + ", ".join(name for name, _ in kept)
                                                 for seed, kept in by_seed.items()))
        rows = []
        for pick in itertools.product(*(range(len(kept)) for kept in by_seed.values())):
            members = list(zip(by_seed, pick))
            score = {name: rejection.scores(top[name], torch.stack([said[m][name] for m in members]).mean(0))
                     for name in sets}
            threshold = rejection.choose_threshold(torch.cat([score[k] for k in development]))
            kinds = {k.removeprefix("development "): rejection.rejected(score[k], threshold) for k in others if k != PEN}
            row = {"AUROC": rejection.auroc(torch.cat([score[k] for k in development]),
                                            torch.cat([score[k] for k in others if k != PEN])),
                   "mean of six": sum(kinds.values()) / len(kinds),
                   "held-out writers": int((score["held-out writers"] < threshold).sum()),
                   "PENDIGITS odd rows": int((score[PEN] < threshold).sum())}
            rows.append(row)
            print(" ".join(f"{seed}:{i}" for seed, i in members) + f": threshold {threshold:.4f}, AUROC"
                  f" {row['AUROC']:.5f}, mean of six {row['mean of six']:.2f}% ("
                  + ", ".join(f"{k} {v:.2f}%" for k, v in kinds.items())
                  + f"); turned away: held-out writers {row['held-out writers']} of {len(sets['held-out writers']):,},"
                  f" PENDIGITS odd rows {row['PENDIGITS odd rows']} of {len(sets[PEN]):,}", flush=True)
        if len(rows) > 1:
            print(f"over {len(rows)} mixes: " + "; ".join(
                f"{k} {min(r[k] for r in rows):.5g} to {max(r[k] for r in rows):.5g}"
                f" (sd {statistics.stdev(r[k] for r in rows):.3g})" for k in rows[0]))
        return 0


if __name__ == "__main__":
    sys.exit(main())
