"""How often each committed model reads a number written in a row exactly (``analysis.numbers``).

    python -m benchmarks.numbers --numbers 500 --data-dir ../shared/data

For every model of the zoo (the committed reference weights): ``--numbers`` 4-digit numbers of each kind
(gaps, tight, touching), and as many single digits composed the same way (they must stay one digit), all
made from MNIST's test digits with ``--seed`` (default 1: seed 0's numbers were looked at while the splitter
was written), read as ``--predict`` reads an image (calibrated; a number with a piece below the model's
threshold is "not a digit", so not read). Written:
``benchmarks/results/numbers.json``; docs/predict.md's table is made from it. Nothing is chosen on it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import data_utils
import model_strategy
from analysis import detector, numbers
from benchmarks.common import REPO, machine
from core.artifacts import REFERENCE_ROOT
from deploy import predict

RESULTS = REPO / "benchmarks" / "results" / "numbers.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--numbers", type=int, default=500)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--seed", type=int, default=1, help="which numbers (seed 0's were looked at while writing the splitter)")
    args = p.parse_args()
    test = data_utils.load_mnist(args.data_dir)["test"]
    rows, started = {}, time.perf_counter()
    with detector.remembering():  # the pieces every reader cuts alike are judged once
        for key in model_strategy.available_models():
            stem = model_strategy.get_strategy(key).stem  # read as --predict reads: calibrated, with its threshold
            model = predict.calibrated(model_strategy.load_trained(key, REFERENCE_ROOT), REFERENCE_ROOT, stem)
            scores = [numbers.score(model, test.images, test.labels, kind, 4, args.numbers, args.seed)
                      for kind in numbers.KINDS]
            scores.append(numbers.score(model, test.images, test.labels, "gaps", 1, args.numbers, args.seed))
            rows[key] = [s.to_dict() for s in scores]
            print(key, " ".join(f"{s.kind}/{s.length}: {s.exact:.1f}%" for s in scores), flush=True)
    RESULTS.write_text(json.dumps({
        "machine": machine(), "command": f"python -m benchmarks.numbers --numbers {args.numbers} --seed {args.seed}",
        "seconds": round(time.perf_counter() - started), "kinds": {k: list(v) for k, v in numbers.KINDS.items()},
        "models": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
