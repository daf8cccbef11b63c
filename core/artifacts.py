"""Where each run's files live, and how they are written: atomically, so none is ever half-written.

Layout under a root: ``outputs/<stem>_params.pth``, ``outputs/<stem>_metrics.json``,
``outputs/<stem>_checkpoint.pt`` (after every epoch), ``summaries/<stem>_summary.txt``, ``plots/<stem>.png``.
Two roots matter: the repository itself holds the committed reference models (``REFERENCE_ROOT``);
a user's runs go to ``runs/`` in it (``RUNS_ROOT``, the default), so training never replaces them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ROOT = REPO_ROOT  # the committed, reproducible reference models and their files
RUNS_ROOT = REPO_ROOT / "runs"  # where runs write unless told otherwise (ignored by git)
FOLDERS = ("outputs", "plots", "summaries")



def package_dir(name: str) -> Path | None:
    """Where the installed package ``name`` lives, found without importing it (data files it ships are read from
    there: scikit-learn's optdigits and photographs); None when it is not installed."""
    spec = importlib.util.find_spec(name)
    return Path(spec.submodule_search_locations[0]) if spec is not None and spec.submodule_search_locations else None

@dataclass(frozen=True)
class ArtifactPaths:
    stem: str
    root: Path | str | None = None

    @property
    def base(self) -> Path:
        return Path(self.root) if self.root is not None else RUNS_ROOT

    @property
    def folders(self) -> list[Path]:
        return [self.base / name for name in FOLDERS]

    @property
    def files(self) -> list[Path]:
        """Every file of this stem that a run or an evaluation may write."""
        names = ("params", "safetensors", "onnx", "onnx_int8", "best_params", "metrics", "checkpoint", "submission",
                 "summary", "plot", "confusion_plot", "mistakes_plot", "filters_plot", "feature_maps_plot", "pipeline_plot",
                 "saliency_plot", "activations", "calibration", "development", "reliability_plot")
        return [getattr(self, name) for name in names]

    @property
    def params(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_params.pth"

    @property
    def safetensors(self) -> Path:
        """The final weights again, as tensors only (no pickle): what ``load_trained`` prefers."""
        return self.base / "outputs" / f"{self.stem}_params.safetensors"

    @property
    def onnx(self) -> Path:
        return self.base / "outputs" / f"{self.stem}.onnx"

    @property
    def onnx_int8(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_int8.onnx"

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

    @property
    def feature_maps_plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}_inspect_maps.png"

    @property
    def pipeline_plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}_inspect_pipeline.png"

    @property
    def saliency_plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}_inspect_saliency.png"

    @property
    def calibration(self) -> Path:
        """``--calibrate``: the temperature the prediction paths divide the logits by, and its measurements."""
        return self.base / "outputs" / f"{self.stem}_calibration.json"

    @property
    def development(self) -> Path:
        """``--calibrate``: the calibrated probabilities of the development digits and non-digits, from which an
        ensemble of several models gets its own threshold without preparing them again."""
        return self.base / "outputs" / f"{self.stem}_development.safetensors"

    @property
    def reliability_plot(self) -> Path:
        return self.base / "plots" / f"{self.stem}_reliability.png"

    @property
    def activations(self) -> Path:
        return self.base / "outputs" / f"{self.stem}_activations.json"


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_NAMES = frozenset({*FOLDERS, "events", "reference"})  # folders of their own under runs/<stem>/
LEADERBOARDS = "leaderboard"  # runs/leaderboard/<run>/: the runs of --model A,B / --seeds K


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run (it becomes a folder), or None."""
    if not RUN_NAME.fullmatch(name):
        return (f"{name!r} cannot name a run: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if name in RESERVED_NAMES:
        return f"{name!r} is a folder of its own under runs/; choose another name"
    return None


def run_dir(stem: str, name: str) -> Path:
    """The folder of the run ``name`` of ``stem`` (``runs/<stem>/<name>``), whether or not it exists."""
    return RUNS_ROOT / stem / name


def new_run_dir(stem: str) -> Path:
    """A folder name no run of ``stem`` has yet, from the time: ``runs/<stem>/YYYYMMDD-HHMMSS`` (``-2``, ... when
    two start in one second)."""
    stamp, n = time.strftime("%Y%m%d-%H%M%S"), 1
    while run_dir(stem, stamp if n == 1 else f"{stamp}-{n}").exists():
        n += 1
    return run_dir(stem, stamp if n == 1 else f"{stamp}-{n}")


def trained_runs(stem: str) -> list[Path]:
    """Every folder under ``runs/`` holding trained weights of ``stem`` (its own runs and the leaderboards' first
    seeds), oldest first by when the weights were written."""
    found = [params.parents[1] for params in RUNS_ROOT.glob(f"*/*/outputs/{stem}_params.pth") if params.is_file()]
    return sorted(found, key=lambda root: ArtifactPaths(stem, root).params.stat().st_mtime)


def trained_root(stem: str, out_dir: Path | str | None) -> Path:
    """Where to read a trained model from: ``out_dir`` when given; else the user's latest run in ``runs/`` when
    there is one, else the committed reference. The modes that read one say which file they loaded."""
    if out_dir is not None:
        return Path(out_dir)
    runs = trained_runs(stem)
    if runs:
        return runs[-1]
    legacy = ArtifactPaths(stem, RUNS_ROOT).params.exists()  # runs/ itself: where every run went before each had a folder
    return RUNS_ROOT if legacy else REFERENCE_ROOT


def is_run(root: Path) -> bool:
    """Whether ``root`` is under ``runs/`` (a user's run), not the committed reference or a folder of the user's."""
    with contextlib.suppress(ValueError):
        Path(root).resolve().relative_to(RUNS_ROOT.resolve())
        return True
    return False


class WriteError(Exception):
    """A file could not be written; ``path`` names it and ``reason`` says why (the OS's words)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason

    def __reduce__(self) -> tuple:  # rebuilt whole when a worker process sends it back (training.jobs)
        return type(self), (self.path, self.reason)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _mode_for(path: Path) -> int:
    """The mode an ordinary ``open(path, "w")`` would leave: the old file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _stage(path: Path, data: bytes) -> str:
    """``data`` in a synced temporary file beside ``path``, with the mode ``path`` will have; returns its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _mode_for(path))
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write several files as one step: all are staged beside their targets first, then renamed.

    A failure while staging (disk full, read-only folder, a directory in the way) removes every
    temporary file and leaves all targets as they were; it raises ``WriteError`` naming the file.
    """
    staged: dict[Path, str] = {}
    current = None
    try:
        for current, data in files.items():
            current = Path(current)
            if current.is_dir():
                raise IsADirectoryError(21, "a directory is in the way", str(current))
            staged[current] = _stage(current, data)
        for current, tmp in list(staged.items()):
            os.replace(tmp, current)
            del staged[current]
    except OSError as exc:
        raise WriteError(current, _reason(exc)) from None
    finally:
        for tmp in staged.values():
            Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: readers see all or nothing."""
    atomic_write_many({Path(path): data})


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode("utf-8")


def atomic_save_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def safetensors_bytes(state: dict) -> bytes:
    """A state_dict in the safetensors format (contiguous CPU copies; tensors only)."""
    return safetensors.torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()})


def torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


PROBE_TRIES = 5  # runs started together into one --out-dir each remove the empty folders their probe made


def probe_writable(folders: list[Path], files: list[Path] = ()) -> None:
    """Create each folder and write, sync and remove a small file in it; no ``files`` may be a directory.
    Folders the probe had to create are removed again, so a refused run leaves no trace.

    ``os.access`` is not enough: it says yes to root on a read-only file system or a full disk.
    Raises ``WriteError`` naming the first folder or file that fails.
    """
    created: list[Path] = []
    try:
        for folder in folders:
            missing: list[Path] = []
            try:
                for attempt in range(PROBE_TRIES):
                    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
                    try:
                        folder.mkdir(parents=True, exist_ok=True)
                        created += reversed(missing)
                        Path(_stage(folder / ".write-probe", b"probe")).unlink()
                        break
                    except FileNotFoundError:  # another run's probe removed the folder it made: make it again
                        if attempt == PROBE_TRIES - 1:
                            raise
            except OSError as exc:
                created += [p for p in reversed(missing) if os.path.isdir(p)]
                raise WriteError(folder, _reason(exc)) from None
        for path in files:
            if os.path.isdir(path):
                raise WriteError(path, "a directory is in the way of this file")
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
