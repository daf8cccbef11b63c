"""Checkpoints: Ctrl-C or SIGTERM keeps the last finished epoch, and --resume ends where an uninterrupted run ends."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import safetensors.torch
import torch

import main
import visualization
from tests.conftest import ROOT, write_idx_set
from training import loop

FLAGS = ["--model", "3", "--epochs", "3", "--batch-size", "32", "--no-verify", "--device", "cpu"]


def _flags(data: Path, out: Path) -> list[str]:
    return ["--data-dir", str(data), "--out-dir", str(out), *FLAGS]


def _without_timings(metrics: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("seconds", "images_per_sec", "elapsed", "started")}
            for e in metrics["history"]["epochs"]]


def _interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    real = loop.train_one_epoch
    calls = {"n": 0}

    def train_one_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(loop, "train_one_epoch", train_one_epoch)


def test_interrupted_run_resumed_equals_the_uninterrupted_run(synthetic_root, tmp_path, monkeypatch, capsys):
    assert main.main(_flags(synthetic_root, tmp_path / "whole")) == 0
    whole = visualization.load_metrics_json("mnist_model_3", tmp_path / "whole")

    with monkeypatch.context() as patch:
        _interrupt_at_epoch(patch, 2)
        assert main.main(_flags(synthetic_root, tmp_path / "split")) == 130
    err = capsys.readouterr().err
    assert "epoch 1 is saved" in err and "--resume" in err
    outputs = tmp_path / "split" / "outputs"
    assert (outputs / "mnist_model_3_checkpoint.pt").is_file()
    assert not (outputs / "mnist_model_3_params.pth").exists()  # no half-trained final weights
    marked = visualization.load_metrics_json("mnist_model_3", tmp_path / "split")
    assert marked["status"] == "interrupted" and len(marked["history"]["epochs"]) == 1

    assert main.main([*_flags(synthetic_root, tmp_path / "split"), "--resume"]) == 0
    split = visualization.load_metrics_json("mnist_model_3", tmp_path / "split")
    assert split["status"] == whole["status"] == "complete"
    assert _without_timings(split) == _without_timings(whole)
    assert split["history"]["batch_train_loss"] == whole["history"]["batch_train_loss"]
    a = torch.load(tmp_path / "whole" / "outputs" / "mnist_model_3_params.pth", weights_only=True)
    b = torch.load(outputs / "mnist_model_3_params.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_interrupt_before_the_first_epoch_ends_says_nothing_was_saved(synthetic_root, tmp_path, monkeypatch, capsys):
    _interrupt_at_epoch(monkeypatch, 1)
    assert main.main(_flags(synthetic_root, tmp_path)) == 130
    assert "nothing was saved" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


def test_resume_without_a_checkpoint_exits_2(synthetic_root, tmp_path, capsys) -> None:
    code = main.main([*_flags(synthetic_root, tmp_path), "--resume"])
    assert code == 2 and "--resume: no checkpoint" in capsys.readouterr().err


def test_resume_with_other_flags_exits_2_naming_them(synthetic_root, tmp_path, monkeypatch, capsys) -> None:
    _interrupt_at_epoch(monkeypatch, 2)
    assert main.main(_flags(synthetic_root, tmp_path)) == 130
    monkeypatch.undo()
    code = main.main([*_flags(synthetic_root, tmp_path), "--resume", "--weight-decay", "0.5"])
    assert code == 2
    assert "--weight-decay 0.0 (now 0.5)" in capsys.readouterr().err


def test_sigterm_during_training_keeps_a_loadable_checkpoint_and_exits_130(tmp_path: Path) -> None:
    data = write_idx_set(tmp_path / "data", n_train=1500, n_test=100)
    cmd = [sys.executable, str(ROOT / "main.py"), "--data-dir", str(data), "--out-dir", str(tmp_path / "out"),
           "--model", "1", "--epochs", "50", "--batch-size", "32", "--no-verify", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "out" / "outputs" / "mnist_model_1_checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint appeared"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and "--resume" in err
    state = torch.load(checkpoint, weights_only=True)
    assert len(state["history"]["epochs"]) >= 1 and "model" in state
    metrics = visualization.load_metrics_json("mnist_model_1", tmp_path / "out")
    assert metrics["status"] == "interrupted" and len(metrics["history"]["epochs"]) >= 1
    assert not list((tmp_path / "out").rglob("*.tmp"))


def _load_every_artifact(root: Path) -> int:
    """Open every non-temporary file under ``root`` the way a user would; returns how many."""
    import json

    import matplotlib.image

    count = 0
    for path in root.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue  # ".<name>.<random>.tmp" files are unfinished writes, never read by the zoo
        if "events" in path.relative_to(root).parts[:1]:  # TensorBoard's own append-only logs: read, not counted
            from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

            list(EventFileLoader(str(path)).Load())  # a record cut short by a kill ends the file, as TensorBoard reads it
            continue
        if path.suffix in (".pth", ".pt"):
            torch.load(path, weights_only=True)
        elif path.suffix == ".safetensors":
            safetensors.torch.load_file(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            matplotlib.image.imread(path)
        else:
            path.read_text()
        count += 1
    return count


def _epochs_recorded(out: Path) -> int:
    import json

    try:
        return len(json.loads((out / "outputs" / "mnist_model_1_metrics.json").read_text())["history"]["epochs"])
    except (OSError, ValueError):
        return 0


def test_kill_9_at_several_moments_leaves_no_corrupt_artifact(tmp_path: Path) -> None:
    """SIGKILL during start-up, after the first checkpoint, mid-training and during the final writes (each
    moment observed on disk, not guessed with a sleep); every file left must load."""
    data = write_idx_set(tmp_path / "data", n_train=600, n_test=100)
    moments = {
        "start-up": lambda out: True,
        "first checkpoint": lambda out: (out / "outputs" / "mnist_model_1_checkpoint.pt").exists(),
        "second epoch recorded": lambda out: _epochs_recorded(out) >= 2,
        "final writes": lambda out: (out / "outputs" / "mnist_model_1_params.pth").exists(),
    }
    for name, reached in moments.items():
        out = tmp_path / name.replace(" ", "_")
        cmd = [sys.executable, str(ROOT / "main.py"), "--data-dir", str(data), "--out-dir", str(out),
               "--model", "1", "--epochs", "3", "--batch-size", "32", "--no-verify", "--device", "cpu"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not reached(out) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.kill()
        proc.wait(timeout=60)
        if out.exists():
            _load_every_artifact(out)
    # the last out-dir then trains to the end, and everything in it loads
    assert subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300).returncode == 0
    assert _load_every_artifact(out) == 9  # params (.pth and .safetensors), metrics, checkpoint, summary, 4 plots


def test_concurrent_runs_write_only_their_own_files_and_each_file_whole(tmp_path: Path) -> None:
    data = write_idx_set(tmp_path / "data", n_train=300, n_test=50)
    out = tmp_path / "out"

    def start(model: str, seed: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--data-dir", str(data), "--out-dir", str(out),
                                 "--model", model, "--seed", seed, "--epochs", "1", "--batch-size", "32",
                                 "--no-verify", "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs = [start("1", "1"), start("1", "2"), start("2", "1")]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    stems = {re.match(r"mnist_model_([^_.]+)", p.name).group(1) for p in out.rglob("mnist_model_*")}
    assert stems == {"1", "2"}
    # 9 files per model: params (.pth, .safetensors), metrics, checkpoint, summary, and 4 plots
    assert _load_every_artifact(out) == 18
    seed = visualization.load_metrics_json("mnist_model_1", out)["config"]["seed"]
    final = torch.load(out / "outputs" / "mnist_model_1_checkpoint.pt", weights_only=True)["config"]["seed"]
    assert seed in (1, 2) and final in (1, 2)  # one run's file, whole: never a mix of bytes


def test_a_folder_another_runs_probe_removes_under_this_ones_is_made_again(tmp_path: Path, monkeypatch) -> None:
    from core import artifacts  # noqa: PLC0415

    real, calls = artifacts._stage, []  # noqa: SLF001

    def removed_first(path: Path, data: bytes) -> str:  # the other run's probe cleans up just before this one stages
        calls.append(path)
        if len(calls) == 1:
            os.rmdir(path.parent)
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path, data)

    monkeypatch.setattr(artifacts, "_stage", removed_first)
    artifacts.probe_writable([tmp_path / "out" / "summaries"])
    assert len(calls) == 2 and not (tmp_path / "out").exists()  # probed on the second try, and left no trace
