"""Every run kept: each training run in a folder of its own under runs/, listed, read back by name or as the latest."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import main
import zoo
from core import artifacts
from core.artifacts import ArtifactPaths

FC = "mnist_model_fc"


def train(data: Path, *extra: str) -> int:
    return main.main(["--model", "fc", "--epochs", "1", "--batch-size", "50", "--data-dir", str(data), "--no-verify",
                      "--device", "cpu", "--no-tensorboard", *extra])


def test_the_same_command_twice_leaves_two_runs_both_listed(runs: Path, data: Path, capsys) -> None:  # noqa: ANN001
    assert train(data) == 0
    assert train(data, "--max-lr", "0.004") == 0
    folders = sorted(p for p in (runs / FC).iterdir())
    assert len(folders) == 2 and all(re.fullmatch(r"\d{8}-\d{6}(-\d+)?", p.name) for p in folders)
    assert all(ArtifactPaths(FC, p).params.is_file() and ArtifactPaths(FC, p).plot.is_file() for p in folders)
    capsys.readouterr()
    assert main.main(["--list-runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["model", "run", "written"]
    first, second = lines[1], lines[2]
    assert first.startswith("fc ") and f"{FC}/{folders[0].name}" in first and "--epochs 1" in first
    assert "complete" in first and "--max-lr 0.004" not in first
    assert second.startswith("fc *") and "--max-lr 0.004" in second  # the latest: what the reading modes use


def test_a_named_run_is_never_replaced_and_is_read_back_by_name(runs: Path, data: Path, capsys) -> None:  # noqa: ANN001
    assert train(data, "--name", "baseline") == 0
    assert train(data, "--name", "other") == 0
    before = ArtifactPaths(FC, runs / FC / "baseline").params.read_bytes()
    capsys.readouterr()
    assert train(data, "--name", "baseline") == 2
    err = capsys.readouterr().err
    assert err.startswith("main.py: error: argument --name: run of model fc 'baseline' exists") and "--resume" in err
    assert ArtifactPaths(FC, runs / FC / "baseline").params.read_bytes() == before
    assert main.main(["--model", "fc", "--predict", str(Path(__file__).with_name("test_runs.py")), "--name",
                      "baseline"]) == 1  # not an image: exit 1, but the run it read is named first
    assert str(runs / FC / "baseline") in capsys.readouterr().err


def test_the_reading_modes_take_the_latest_run_and_write_into_it(runs: Path, data: Path, capsys) -> None:  # noqa: ANN001
    assert train(data, "--name", "one") == 0
    assert train(data, "--name", "two") == 0
    capsys.readouterr()
    one, two = (ArtifactPaths(FC, runs / FC / name).metrics for name in ("one", "two"))
    before = one.stat().st_mtime_ns, two.stat().st_mtime_ns
    assert main.main(["--model", "fc", "--evaluate", "--data-dir", str(data), "--no-verify"]) == 0
    assert f"evaluating the params under {runs / FC / 'two'}" in capsys.readouterr().out
    assert one.stat().st_mtime_ns == before[0] and two.stat().st_mtime_ns != before[1]  # into run two
    assert artifacts.trained_root(FC, None) == runs / FC / "two"


def test_reading_the_reference_writes_under_runs_not_into_the_repository(runs: Path, data: Path, capsys) -> None:  # noqa: ANN001
    assert main.main(["--model", "fc", "--evaluate", "--data-dir", str(data), "--no-verify"]) == 0
    assert f"under {artifacts.REFERENCE_ROOT}" in capsys.readouterr().out
    assert ArtifactPaths(FC, runs / FC / "reference").confusion_plot.is_file()
    assert zoo.list_runs() == []  # an evaluation of the reference is not a run


def test_resume_continues_the_latest_run_or_the_named_one(runs: Path, data: Path, capsys) -> None:  # noqa: ANN001
    assert train(data, "--name", "a") == 0
    assert train(data, "--name", "b") == 0
    capsys.readouterr()
    assert train(data, "--resume") == 0  # b: its checkpoint is the newest
    assert train(data, "--resume", "--name", "a") == 0
    assert len(list((runs / FC).iterdir())) == 2


def test_the_resume_hint_names_the_run_it_continues(runs: Path) -> None:
    checkpoint = ArtifactPaths(FC, runs / FC / "20261204-101010").checkpoint
    assert main._resume_hint(["--model", "fc"], checkpoint).endswith("--model fc --name 20261204-101010 --resume")
    assert main._resume_hint(["--model", "fc", "--name", "x"], checkpoint).endswith("--name x --resume")
    assert main._resume_hint(["--out-dir", "elsewhere"], ArtifactPaths(FC, "elsewhere").checkpoint).endswith(
        "--out-dir elsewhere --resume")


def test_a_leaderboard_gets_a_folder_of_its_own(runs: Path, data: Path) -> None:
    assert main.main(["--model", "fc,fc-deep", "--epochs", "1", "--batch-size", "50", "--data-dir", str(data),
                      "--no-verify", "--device", "cpu", "--no-tensorboard", "--name", "table"]) == 0
    board = runs / "leaderboard" / "table"
    assert (board / "outputs" / "leaderboard.json").is_file() and ArtifactPaths(FC, board).params.is_file()
    assert artifacts.trained_root(FC, None) == board  # a leaderboard's first seed is a run of the model too


def test_zoo_train_keeps_each_run(runs: Path, data: Path) -> None:
    for _ in range(2):
        zoo.train("fc", epochs=1, batch_size=50, data_dir=str(data), verify=False, device="cpu")
    zoo.train("fc", name="mine", epochs=1, batch_size=50, data_dir=str(data), verify=False, device="cpu")
    assert len(list((runs / FC).iterdir())) == 3
    assert [r.folder.name for r in zoo.list_runs()][-1] == "mine" and zoo.list_runs()[-1].latest


@pytest.mark.parametrize(("argv", "words"), [
    (["--name", "../escape"], "argument --name: '../escape' cannot name a run"),
    (["--name", "reference"], "argument --name: 'reference' is a folder of its own"),
    (["--name", "x", "--out-dir", "somewhere"], "argument --name: names a run under runs/; --out-dir names the folder"),
    (["--resume"], "argument --resume: no run of model fc to continue"),
    (["--predict", "x.png", "--name", "absent"], "argument --name: no trained run 'absent' of model fc"),
    (["--serve", "--name", "x"], "argument --name: does not work with --serve"),
    (["--list-models", "--name", "x"], "argument --name: works with training"),
])
def test_bad_run_names_are_one_line_and_exit_2_with_nothing_written(runs: Path, data: Path, capsys, argv: list[str],  # noqa: ANN001
                                                                    words: str) -> None:
    assert train(data, *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"main.py: error: {words}"), err
    assert not runs.exists() or not any(runs.rglob("*.pth"))
