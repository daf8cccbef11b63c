"""Hostile cases: the file system, the numbers, the data and the weights. Every case ends in one line
naming the flag or file, its documented exit code, no traceback, and the output folder as it was."""
from __future__ import annotations

import errno
import gzip
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest
import torch

import main
import model_strategy
from core import artifacts
from model_strategy import IncompatibleWeightsError
from tests.conftest import write_idx_set
from training import runs

TRAIN = ["--model", "1", "--epochs", "2", "--batch-size", "64", "--no-verify", "--device", "cpu"]
PARAMS = "outputs/mnist_model_1_params.pth"
CHECKPOINT = "outputs/mnist_model_1_checkpoint.pt"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes); a missing root is empty."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = main.main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    return code, lines


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """Synthetic data and a finished 2-epoch run of model 1 (params, metrics, checkpoint)."""
    base = tmp_path_factory.mktemp("hostile")
    data = write_idx_set(base / "data", n_train=256, n_test=64)
    assert main.main(["--data-dir", str(data), "--out-dir", str(base / "run"), *TRAIN]) == 0
    return data, base / "run"


# --------------------------------------------------------------------------- the output side: exit 2 before training

def _file_as_out_dir(tmp: Path) -> tuple[Path, str]:
    (tmp / "a-file").write_text("x")
    return tmp / "a-file" / "sub", "a-file"


def _outputs_is_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "outputs").write_text("x")
    return tmp / "out", "outputs"


def _plots_is_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "plots").write_text("x")
    return tmp / "out", "plots"


def _summaries_is_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "summaries").write_text("x")
    return tmp / "out", "summaries"


def _params_is_a_directory(tmp: Path) -> tuple[Path, str]:
    (tmp / "out" / PARAMS).mkdir(parents=True)
    return tmp / "out", "mnist_model_1_params.pth"


def _metrics_is_a_directory(tmp: Path) -> tuple[Path, str]:
    (tmp / "out" / "outputs" / "mnist_model_1_metrics.json").mkdir(parents=True)
    return tmp / "out", "mnist_model_1_metrics.json"


def _plot_is_a_directory(tmp: Path) -> tuple[Path, str]:
    (tmp / "out" / "plots" / "mnist_model_1.png").mkdir(parents=True)
    return tmp / "out", "mnist_model_1.png"


def _in_proc(tmp: Path) -> tuple[Path, str]:
    return Path("/proc/mnist-zoo-cannot-be-here"), "/proc/mnist-zoo-cannot-be-here"


def _name_too_long(tmp: Path) -> tuple[Path, str]:
    return tmp / ("n" * 300), "File name too long"


def _under_dev_null(tmp: Path) -> tuple[Path, str]:
    return Path("/dev/null/out"), "/dev/null"


OUT_DIR_CASES = [_file_as_out_dir, _outputs_is_a_file, _plots_is_a_file, _summaries_is_a_file, _params_is_a_directory,
                 _metrics_is_a_directory, _plot_is_a_directory, _in_proc, _name_too_long, _under_dev_null]


@pytest.mark.parametrize("make", OUT_DIR_CASES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("mode", [[], ["--summary-only"], ["--evaluate"]], ids=["train", "summary", "evaluate"])
def test_an_output_side_that_cannot_be_written_is_refused_before_any_work(make: Callable, mode, synthetic_root,
                                                                          tmp_path, capsys, monkeypatch) -> None:
    out, named = make(tmp_path)
    monkeypatch.setattr(runs.loop, "build", lambda *a, **k: pytest.fail("trained although it cannot write"))
    before = snapshot(tmp_path)
    code, lines = run_cli(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN, *mode], capsys)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("main.py: error: argument --out-dir: ") and named in lines[0]
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- the numbers: exit 2 naming the flag

NUMBERS = [
    (["--seed", str(2**64)], "--seed"),
    (["--seed", str(2**32)], "--seed"),
    (["--seed", "1e3"], "--seed"),
    (["--batch-size", str(2**63 + 1)], "--batch-size"),
    (["--batch-size", "60001"], "--batch-size"),
    (["--epochs", str(2**70)], "--epochs"),
    (["--subset", str(2**64)], "--subset"),
    (["--val-split", str(2**64)], "--val-split"),
    (["--patience", str(2**64), "--val-split", "10"], "--patience"),
    (["--seeds", "0"], "--seeds"),
    (["--seeds", "1000"], "--seeds"),
    (["--seeds", "3", "--seed", str(2**32 - 2)], "--seeds"),
    (["--lr", "1e400", "--scheduler", "step"], "--lr"),
    (["--max-lr", "-inf"], "--max_lr"),
]


@pytest.mark.parametrize("argv,flag", NUMBERS, ids=[" ".join(a) for a, _ in NUMBERS])
def test_a_number_outside_its_documented_range_exits_2_naming_the_flag(argv, flag, synthetic_root, tmp_path,
                                                                       capsys) -> None:
    code, lines = run_cli(["--data-dir", str(synthetic_root), "--out-dir", str(tmp_path / "out"), *TRAIN, *argv], capsys)
    assert code == 2 and len(lines) == 1 and f"argument {flag}" in lines[0]
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the data: exit 2 naming the file

def _data_dir_of(make: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        root = write_idx_set(tmp / "data", n_train=128, n_test=32)
        make(root / "MNIST" / "raw")
        return root
    build.__name__ = make.__name__
    return build


def _empty_images(raw: Path) -> None:
    (raw / "train-images-idx3-ubyte").write_bytes(b"")


def _truncated_gz(raw: Path) -> None:
    data = (raw / "t10k-images-idx3-ubyte").read_bytes()
    (raw / "t10k-images-idx3-ubyte").unlink()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data)[:200])


def _a_directory_for_labels(raw: Path) -> None:
    (raw / "train-labels-idx1-ubyte").unlink()
    (raw / "train-labels-idx1-ubyte").mkdir()


def _a_fifo_for_labels(raw: Path) -> None:
    (raw / "t10k-labels-idx1-ubyte").unlink()
    os.mkfifo(raw / "t10k-labels-idx1-ubyte")


def _labels_beyond_9(raw: Path) -> None:
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 42]))


def _wrong_image_size(raw: Path) -> None:
    (raw / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 32, 0, 0, 0, 32]) + bytes(1024))


DATA_CASES = [_data_dir_of(f) for f in (_empty_images, _truncated_gz, _a_directory_for_labels, _a_fifo_for_labels,
                                        _labels_beyond_9, _wrong_image_size)]


@pytest.mark.parametrize("make", DATA_CASES, ids=lambda f: f.__name__.strip("_"))
def test_a_broken_data_file_exits_2_naming_it_and_writes_nothing(make, tmp_path, capsys) -> None:
    root = make(tmp_path)
    code, lines = run_cli(["--data-dir", str(root), "--out-dir", str(tmp_path / "out"), *TRAIN], capsys)
    assert code == 2 and len(lines) == 1 and str(root / "MNIST" / "raw") in lines[0]
    assert not (tmp_path / "out").exists()


def test_an_unreadable_data_file_is_named(tmp_path, capsys, monkeypatch) -> None:
    root = write_idx_set(tmp_path / "data", n_train=128, n_test=32)
    real = Path.read_bytes

    def refuse(path: Path) -> bytes:  # chmod 000 does not stop root: refuse the read the way the OS would
        if path.name == "train-images-idx3-ubyte":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    code, lines = run_cli(["--data-dir", str(root), "--out-dir", str(tmp_path / "out"), *TRAIN], capsys)
    assert code == 2 and len(lines) == 1 and "train-images-idx3-ubyte" in lines[0] and "Permission denied" in lines[0]


# --------------------------------------------------------------------------- the weights: exit 2 / typed error naming the file

def _zero_bytes(path: Path, good: bytes) -> None:
    path.write_bytes(b"")


def _truncated(path: Path, good: bytes) -> None:
    path.write_bytes(good[: len(good) // 2])


def _random_bytes(path: Path, good: bytes) -> None:
    path.write_bytes(os.urandom(4096))


def _directory(path: Path, good: bytes) -> None:
    path.unlink()
    path.mkdir()


def _fifo(path: Path, good: bytes) -> None:
    path.unlink()
    os.mkfifo(path)


def _state_dict_edit(edit: Callable[[dict], None], name: str) -> Callable[[Path, bytes], None]:
    def write(path: Path, good: bytes) -> None:
        state = torch.load(path, weights_only=True)
        edit(state)
        torch.save(state, path)
    write.__name__ = name
    return write


def _first_float(state: dict) -> str:
    return next(k for k, v in state.items() if v.is_floating_point())


WEIGHT_CASES = [
    (_zero_bytes, "empty file"), (_truncated, "not a readable weights file"), (_random_bytes, "not a readable"),
    (_directory, "is a directory"), (_fifo, "not a regular file"),
    (_state_dict_edit(lambda s: s.__setitem__(_first_float(s), s[_first_float(s)].fill_(float("nan"))), "nan"),
     "NaN or infinite"),
    (_state_dict_edit(lambda s: s.__setitem__(_first_float(s), s[_first_float(s)].to(torch.int64)), "integers"),
     "torch.int64"),
    (_state_dict_edit(lambda s: s.__setitem__(_first_float(s), s[_first_float(s)][:1]), "wrong_shape"),
     "an unknown model"),
    (_state_dict_edit(lambda s: s.pop(_first_float(s)), "missing_tensor"), "an unknown model"),
    (_state_dict_edit(lambda s: s.__setitem__("extra", torch.zeros(1)), "extra_tensor"), "an unknown model"),
    (lambda path, good: torch.save(model_strategy.get_strategy("2").builder().state_dict(), path), "model 2"),
    (lambda path, good: torch.save({"not": "tensors"}, path), "not a state_dict"),
]


def _copied(run: Path, out: Path, name: str, damage: Callable[[Path, bytes], None]) -> Path:
    """``out`` holding a copy of ``run``'s file ``name``, damaged."""
    (out / "outputs").mkdir(parents=True)
    good = (run / name).read_bytes()
    (out / name).write_bytes(good)
    damage(out / name, good)
    return out


def _nan_in_checkpoint(path: Path, good: bytes) -> None:
    state = torch.load(path, weights_only=True)
    state["model"][_first_float(state["model"])].fill_(float("nan"))
    torch.save(state, path)


@pytest.mark.parametrize("damage,reason", WEIGHT_CASES, ids=lambda c: getattr(c, "__name__", None))
def test_damaged_weights_are_named_from_the_cli_and_from_python(damage, reason, trained, tmp_path, capsys) -> None:
    data, run = trained
    out = _copied(run, tmp_path / "out", PARAMS, damage)
    with pytest.raises(IncompatibleWeightsError, match=reason):
        model_strategy.load_trained("1", out)
    before = snapshot(out)
    code, lines = run_cli(["--data-dir", str(data), "--out-dir", str(out), *TRAIN, "--predict", str(tmp_path)], capsys)
    assert code == 2 and len(lines) == 1 and str(out / PARAMS) in lines[0] and reason in lines[0]
    assert snapshot(out) == before


@pytest.mark.parametrize("damage,reason", [(_zero_bytes, "not a readable checkpoint"), (_truncated, "not a readable"),
                                           (_directory, "a directory is in the way"), (_fifo, "not a regular file"),
                                           (_nan_in_checkpoint, "NaN or infinite")],
                         ids=["zero_bytes", "truncated", "directory", "fifo", "nan"])
def test_a_damaged_checkpoint_refuses_to_resume_naming_it(damage, reason, trained, tmp_path, capsys) -> None:
    data, run = trained
    out = _copied(run, tmp_path / "out", CHECKPOINT, damage)
    before = snapshot(out)
    code, lines = run_cli(["--data-dir", str(data), "--out-dir", str(out), *TRAIN, "--resume"], capsys)
    assert code == 2 and len(lines) == 1 and reason in lines[0]
    assert ("argument --out-dir" if damage is _directory else "argument --resume") in lines[0]
    assert str(out / CHECKPOINT) in lines[0] and snapshot(out) == before


# --------------------------------------------------------------------------- writes failing mid-run: exit 4

def _fail_staging(monkeypatch, after: int, error: int = errno.ENOSPC, when: Callable[[Path], bool] = lambda p: True):
    """Make the ``after``-th and later staged writes (that ``when`` accepts) fail with ``error``."""
    real, calls = artifacts._stage, {"n": 0}

    def stage(path: Path, data: bytes) -> str:
        if when(path) and ".write-probe" not in path.name:
            calls["n"] += 1
            if calls["n"] >= after:
                raise OSError(error, os.strerror(error), str(path))
        return real(path, data)
    monkeypatch.setattr(artifacts, "_stage", stage)


def _after_epoch_one(monkeypatch, out: Path, then: Callable[[], None]) -> dict:
    """Once epoch 1's files are written: snapshot ``out`` into the returned dict, then call ``then``."""
    after_first: dict = {}
    real_end = runs.RunWriter.on_epoch_end

    def on_epoch_end(self, run, record):
        real_end(self, run, record)
        if record.epoch == 1:
            after_first.update(snapshot(out))
            then()
    monkeypatch.setattr(runs.RunWriter, "on_epoch_end", on_epoch_end)
    return after_first


def test_disk_full_in_the_second_epoch_keeps_the_first_epochs_files_exactly_and_says_how_to_resume(
        synthetic_root, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    argv = ["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN]
    after_first = _after_epoch_one(monkeypatch, out, lambda: _fail_staging(monkeypatch, after=1))
    code, lines = run_cli(argv, capsys)
    assert code == 4 and len(lines) == 1 and "No space left on device" in lines[0]
    assert "mnist_model_1_" in lines[0] and "epoch 1 is saved" in lines[0].lower() and "--resume" in lines[0]
    assert snapshot(out) == after_first  # nothing of epoch 2, no temporary file
    monkeypatch.undo()
    assert main.main([*argv, "--resume"]) == 0


def test_a_figure_that_cannot_be_written_loses_neither_weights_nor_metrics(synthetic_root, tmp_path, capsys,
                                                                            monkeypatch) -> None:
    out = tmp_path / "out"
    _fail_staging(monkeypatch, after=1, error=errno.EROFS, when=lambda p: p.suffix == ".png")
    code, lines = run_cli(["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN], capsys)
    assert code == 4 and len(lines) == 1 and "Read-only file system" in lines[0] and ".png" in lines[0]
    assert (out / PARAMS).is_file() and (out / "outputs" / "mnist_model_1_metrics.json").is_file()
    assert not [p for p in out.rglob("*.tmp")]
    model_strategy.load_trained("1", out)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 1 MB tmpfs of our own (root and a kernel that allows it); skipped, loudly, elsewhere."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:80]}); the injected-failure tests"
                    " cover disk full instead")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_really_full_disk_ends_with_exit_4_and_the_last_good_epoch_intact(synthetic_root, small_fs, capsys,
                                                                            monkeypatch) -> None:
    out = small_fs / "out"
    argv = ["--data-dir", str(synthetic_root), "--out-dir", str(out), *TRAIN]

    def fill_the_disk() -> None:  # from elsewhere, between two epochs
        with open(small_fs / "filler", "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
    after_first = _after_epoch_one(monkeypatch, out, fill_the_disk)
    code, lines = run_cli(argv, capsys)
    assert code == 4 and len(lines) == 1 and "No space left on device" in lines[0] and "--resume" in lines[0]
    assert snapshot(out) == after_first
    (small_fs / "filler").unlink()
    monkeypatch.undo()
    assert main.main([*argv, "--resume"]) == 0


def test_a_read_only_file_system_is_refused_before_training(synthetic_root, small_fs, capsys) -> None:
    (small_fs / "out").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    code, lines = run_cli(["--data-dir", str(synthetic_root), "--out-dir", str(small_fs / "out"), *TRAIN], capsys)
    assert code == 2 and len(lines) == 1 and "--out-dir" in lines[0] and "Read-only file system" in lines[0]
