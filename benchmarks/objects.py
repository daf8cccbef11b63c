"""Objects in MNIST's format: what V1-V3 answer to photographs of clothes, shoes and bags as Fashion-MNIST stores
them (light objects on black, 28x28), handed to ``--predict`` as they are.

    python -m benchmarks.objects

Reads the development objects (``digits.nondigits.objects``: the last 200 of each Fashion-MNIST class, from its
test images; ``training.detector --objects`` trains on 200 others of each class) as ``--predict`` reads a file, and prints per
model the share answered "not a digit", per class, and what the accepted ones were read as. A development set:
nothing here chooses anything, and no test set is read.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter

import zoo
from core.artifacts import REFERENCE_ROOT
from deploy import reading
from digits import nondigits

MODELS = ("1", "2", "3")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model keys (default: 1,2,3)")
    args = p.parse_args(argv)
    try:
        images = nondigits.objects("development")
    except nondigits.NonDigitsError as exc:
        print(f"objects: error: {exc}", file=sys.stderr)
        return 2
    each = len(images) // len(nondigits.OBJECT_CLASSES)
    classes = [name for name in nondigits.OBJECT_CLASSES for _ in range(each)]
    print(f"{len(images)} development objects ({each} of each of {len(nondigits.OBJECT_CLASSES)} classes);"
          " read as --predict reads a file")
    for key in args.models.split(","):
        said = reading.read_all(zoo.load(key, REFERENCE_ROOT, calibrated=True), list(images.float() / 255))
        turned = Counter(name for name, s in zip(classes, said) if s.verdict == "not a digit")
        accepted = Counter(f"{name}>{s.number}" for name, s in zip(classes, said) if s.verdict != "not a digit")
        print(f"model {key}: {100 * sum(turned.values()) / len(said):.1f}% rejected ("
              + ", ".join(f"{name} {100 * turned[name] / each:.0f}%" for name in nondigits.OBJECT_CLASSES)
              + "); accepted most: " + " ".join(f"{k} x{n}" for k, n in accepted.most_common(8)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
