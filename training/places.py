"""Where a command reads its trained model from and writes its files, when ``--out-dir`` does not say.

Every training run gets a folder of its own, ``runs/<stem>/<name>`` (``--name``, else the time it started), and a
leaderboard ``runs/leaderboard/<name>``: no run replaces another's files. A mode that reads a trained model takes
the run ``--name`` names, else the latest (``artifacts.trained_root``), and writes what it makes (an evaluation,
figures, an export) into that run's folder; reading the committed reference, into ``runs/<stem>/reference``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import model_strategy
from config import ConfigError
from core import artifacts
from core.artifacts import LEADERBOARDS, ArtifactPaths, is_run, new_run_dir, run_dir, run_name_problem, trained_root

# the modes that read one trained model
READING = ("evaluate", "external", "inspect", "export", "predict", "calibrate", "reading")


@dataclass(frozen=True)
class Places:
    source: Path | None  # where the trained model is read from (reading modes)
    out_dir: Path | None  # where files are written (None: nothing decided here)


def latest_checkpoint(stem: str) -> Path | None:
    """The run of ``stem`` whose checkpoint was written last, under ``runs/<stem>/`` (or ``runs/`` itself, as runs
    were kept before each had a folder)."""
    found = [c.parents[1] for c in artifacts.RUNS_ROOT.glob(f"{stem}/*/outputs/{stem}_checkpoint.pt") if c.is_file()]
    if found:
        return max(found, key=lambda root: ArtifactPaths(stem, root).checkpoint.stat().st_mtime)
    return artifacts.RUNS_ROOT if ArtifactPaths(stem, artifacts.RUNS_ROOT).checkpoint.is_file() else None


def fresh(stem: str, name: str | None, what: str) -> Path:
    """A new run's folder: ``name``'s, which must not exist yet, or one named by the time."""
    if name is None:
        return new_run_dir(stem)
    folder = run_dir(stem, name)
    if folder.exists():
        raise ConfigError("name", f"{what} {name!r} exists ({folder}); choose another name"
                          + (", or add --resume to continue it" if stem != LEADERBOARDS else ""))
    return folder


def locate(mode: str, key: str, name: str | None, resume: bool, out_dir: str | None) -> Places:
    """The source and the output folder of a command (see the module's docstring); ``out_dir`` given wins."""
    if name is not None:
        problem = run_name_problem(name)
        if problem:
            raise ConfigError("name", problem)
        if out_dir is not None:
            raise ConfigError("name", "names a run under runs/; --out-dir names the folder itself: give one of them")
        if mode not in ("train", "leaderboard", *READING):
            raise ConfigError("name", "works with training, --resume, a leaderboard and the modes that read a trained"
                              " model (--predict, --evaluate, --evaluate-external, --inspect, --export)")
    stem = model_strategy.get_strategy(key).stem
    if out_dir is not None:
        return Places(Path(out_dir) if mode in READING else None, Path(out_dir))
    if mode == "train" and resume:
        folder = run_dir(stem, name) if name else latest_checkpoint(stem)
        if folder is None:
            raise ConfigError("resume", f"no run of model {key} to continue: no checkpoint under {artifacts.RUNS_ROOT / stem}"
                              " (train without --resume first)")
        return Places(None, folder)
    if mode == "train":
        return Places(None, fresh(stem, name, f"run of model {key}"))
    if mode == "leaderboard":
        return Places(None, fresh(LEADERBOARDS, name, "leaderboard"))
    if mode in READING:
        source = run_dir(stem, name) if name else trained_root(stem, None)
        if name and not ArtifactPaths(stem, source).params.is_file():
            raise ConfigError("name", f"no trained run {name!r} of model {key} ({source} holds no"
                              f" {stem}_params.pth); --list-runs lists the runs")
        return Places(source, source if is_run(source) else artifacts.RUNS_ROOT / stem / "reference")
    return Places(None, None)
