"""Where each run's files live, and how they are written: atomically, so none is ever half-written.

Layout under a root (``--out-dir``, default this repository): ``outputs/<stem>_params.pth``,
``outputs/<stem>_metrics.json``, ``outputs/<stem>_checkpoint.pt`` (after every epoch),
``summaries/<stem>_summary.txt``, ``plots/<stem>.png``.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ArtifactPaths:
    stem: str
    root: Path | str | None = None

    @property
    def base(self) -> Path:
        return Path(self.root) if self.root is not None else REPO_ROOT

    @property
    def params(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_params.pth"

    @property
    def best_params(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_best_params.pth"

    @property
    def metrics(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_metrics.json"

    @property
    def checkpoint(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_checkpoint.pt"

    @property
    def submission(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_submission.csv"

    @property
    def summary(self) -> Path:
        return self.base / "summaries" / f"{self.stem}_summary.txt"

    @property
    def plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}.png"

    @property
    def confusion_plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}_confusion.png"

    @property
    def mistakes_plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}_mistakes.png"

    @property
    def filters_plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}_filters.png"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
