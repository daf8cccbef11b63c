"""Shared fixtures: synthetic IDX data, and the real MNIST when configured (pyproject puts the repository on the path)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch

from data_utils import MNIST_MD5, default_data_dir, idx_bytes

ROOT = Path(__file__).resolve().parents[1]


def write_idx_set(root: Path, n_train: int = 256, n_test: int = 64, gz: bool = False, seed: int = 0) -> Path:
    """Four small IDX files in torchvision's layout under ``root``: class-dependent blobs, learnable."""
    gen = torch.Generator().manual_seed(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.randint(0, 10, (n,), generator=gen, dtype=torch.uint8)
        images = torch.randint(0, 40, (n, 28, 28), generator=gen, dtype=torch.uint8)
        for i, label in enumerate(labels.tolist()):  # a bright bar whose place encodes the digit
            images[i, 4 + 2 * label: 6 + 2 * label, 6:22] = 255
        for name, tensor in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(tensor)
            (raw / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return root


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Path:
    return write_idx_set(tmp_path / "data")


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty runs/ away from the repository's: where the runs a test trains are kept."""
    from core import artifacts  # noqa: PLC0415

    monkeypatch.setattr(artifacts, "RUNS_ROOT", tmp_path / "runs")
    return tmp_path / "runs"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 training and 60 test images of synthetic IDX data, shared by a module's short training runs."""
    return write_idx_set(tmp_path_factory.mktemp("data"), n_train=200, n_test=60)


def _has_mnist(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / n).exists() or (raw / f"{n}.gz").exists() for n in MNIST_MD5)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST: ``$MNIST_DATA_DIR`` (CI sets it to ../shared/data), else the ``data/`` that the main
    command fetched into the repository; skips loudly without either."""
    for root in (os.environ.get("MNIST_DATA_DIR"), default_data_dir()):
        if root and _has_mnist(Path(root)):
            return Path(root)
    pytest.skip("real-MNIST test skipped: set MNIST_DATA_DIR to a folder holding MNIST/raw/ (CI uses ../shared/data),"
                " or run the main command once, which fetches it into data/")
