"""--model all / a comma list with --seeds: one entry per model, every seed's final accuracy recorded."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

import main
from training import leaderboard


def test_leaderboard_on_a_subset_has_an_entry_per_model_and_a_value_per_seed(synthetic_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert main.main(["--model", "1,fc", "--seeds", "2", "--seed", "5", "--epochs", "1", "--batch-size", "64",
                      "--data-dir", str(synthetic_root), "--out-dir", str(out), "--no-verify", "--device", "cpu"]) == 0
    record = json.loads((out / "outputs" / "leaderboard.json").read_text())
    entries = {e["key"]: e for e in record["entries"]}
    assert set(entries) == {"1", "fc"}
    for key, params in (("1", 7_720), ("fc", 235_146)):
        assert entries[key]["seeds"] == [5, 6] and len(entries[key]["final_test_acc"]) == 2
        assert entries[key]["params"] == params and entries[key]["min"] == min(entries[key]["final_test_acc"])
    # the first seed's run leaves the usual artifacts; the others live only in the leaderboard
    first = json.loads((out / "outputs" / "mnist_model_fc_metrics.json").read_text())
    assert first["config"]["seed"] == 5 and first["summary"]["final_test_acc"] == entries["fc"]["final_test_acc"][0]
    table = (out / "outputs" / "leaderboard.md").read_text()
    assert "| 1 | 7,720 | 1 |" in table and "| fc | 235,146 | 1 |" in table
    assert matplotlib.image.imread(out / "plots" / "leaderboard.png").ndim == 3


def test_mean_and_spread_are_computed_over_seeds() -> None:
    entry = leaderboard.Entry("3", 8650, 15, [1, 2, 3], [99.5, 99.6, 99.4], 18.0)
    record = entry.to_dict()
    assert record["mean"] == pytest.approx(99.5) and record["std"] == pytest.approx(0.1) and record["min"] == 99.4


@pytest.mark.parametrize("extra", [["--evaluate"], ["--summary-only"], ["--resume"]])
def test_a_model_list_refuses_single_model_actions(synthetic_root, tmp_path, capsys, extra) -> None:
    code = main.main(["--model", "all", "--data-dir", str(synthetic_root), "--out-dir", str(tmp_path), *extra])
    assert code == 2 and "leaderboard" in capsys.readouterr().err


def test_a_list_with_an_unknown_model_exits_2_naming_it(tmp_path, capsys) -> None:
    code = main.main(["--model", "1,resnet", "--out-dir", str(tmp_path)])
    assert code == 2 and "unknown model 'resnet'" in capsys.readouterr().err


def test_an_interrupted_leaderboard_keeps_the_models_it_finished(synthetic_root, tmp_path, monkeypatch, capsys):
    from training import loop

    real, calls = loop.train_one_epoch, {"n": 0}

    def train_one_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second model's first epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(loop, "train_one_epoch", train_one_epoch)
    code = main.main(["--model", "1,2", "--epochs", "1", "--data-dir", str(synthetic_root), "--out-dir", str(tmp_path),
                      "--no-verify", "--device", "cpu"])
    assert code == 130 and "leaderboard files hold the models finished" in capsys.readouterr().err
    entries = json.loads((tmp_path / "outputs" / "leaderboard.json").read_text())["entries"]
    assert [e["key"] for e in entries] == ["1"]


def test_accuracy_record_takes_its_project_rows_from_a_leaderboard(tmp_path):
    from benchmarks.accuracy import import_leaderboard, summarize

    board = tmp_path / "leaderboard.json"
    board.write_text(json.dumps({"entries": [
        {"key": "3", "params": 8650, "epochs": 15, "seeds": [1, 2], "final_test_acc": [99.5, 99.4],
         "seconds_per_epoch": 14.0, "test_acc_per_epoch": [[99.0, 99.5], [99.1, 99.4]]}]}))
    old = [{"pipeline": "project", "model": "3", "seed": 1, "epochs": 15, "final_test_acc": 98.0},
           {"pipeline": "classic", "model": "3", "seed": 1, "epochs": 15, "final_test_acc": 99.3}]
    runs = import_leaderboard(old, board)
    project = [r for r in runs if r["pipeline"] == "project"]
    assert [(r["seed"], r["final_test_acc"]) for r in project] == [(1, 99.5), (2, 99.4)]  # the stale row is gone
    assert project[1]["test_acc_per_epoch"] == [99.1, 99.4] and "--seeds 2" in project[0]["command"]
    assert any(r["pipeline"] == "classic" for r in runs)
    rows = {r["pipeline"]: r for r in summarize(runs)}
    assert rows["project"]["mean"] == 99.45


def test_a_leaderboard_trained_model_by_model_keeps_the_earlier_rows(synthetic_root, tmp_path) -> None:
    common = ["--seeds", "2", "--epochs", "1", "--batch-size", "64", "--data-dir", str(synthetic_root),
              "--out-dir", str(tmp_path), "--no-verify", "--device", "cpu"]
    assert main.main(["--model", "1,fc", *common]) == 0
    first = {e["key"]: e for e in json.loads((tmp_path / "outputs" / "leaderboard.json").read_text())["entries"]}
    assert main.main(["--model", "fc", "--seed", "7", *common]) == 0
    entries = {e["key"]: e for e in json.loads((tmp_path / "outputs" / "leaderboard.json").read_text())["entries"]}
    assert entries["1"] == first["1"] and entries["fc"]["seeds"] == [7, 8]
    # every seed's run is traceable: its whole metrics record is kept, named in the row
    for name, seed, acc in zip(entries["fc"]["metrics_files"], [7, 8], entries["fc"]["final_test_acc"]):
        record = json.loads((tmp_path / name).read_text())
        assert record["config"]["seed"] == seed and record["summary"]["final_test_acc"] == acc


def test_the_pareto_frontier_keeps_exactly_the_points_nothing_cheaper_beats() -> None:
    # (cost, accuracy): b is beaten by a (cheaper and better); d ties c's accuracy at a higher cost
    points = [(1, 99.0), (2, 98.0), (3, 99.5), (4, 99.5), (10, 99.6)]
    assert leaderboard.pareto(points) == [0, 2, 4]


def _record(seed: int, augment: str | None) -> dict:
    cfg = {"seed": seed, "epochs": 1, "optimizer": "sgd", **({"augment": augment} if augment else {})}
    return {"config": cfg, "summary": {"params": 7_720, "final_test_acc": 99.0 + seed / 10},
            "history": {"epochs": [{"seconds": 5.0, "test_acc": 99.0}]}}


def test_an_entry_names_its_augmentation_and_records_older_than_the_flag_read_as_rotation() -> None:
    scans = leaderboard.entry_from_runs("1", [_record(1, "rotation-scans"), _record(2, "rotation-scans")])
    old = leaderboard.entry_from_runs("2", [_record(1, None), _record(2, None)])
    assert scans.settings["augment"] == "rotation-scans" and old.settings["augment"] == "rotation"
    table = leaderboard.markdown([scans, old])
    assert "| augment |" in table and "| 1 | 7,720 | 1 | rotation-scans |" in table and "| 2 | 7,720 | 1 | rotation |" in table


def test_seeds_side_by_side_run_in_processes_of_their_own_and_write_what_one_after_the_other_writes(
        synthetic_root, tmp_path) -> None:
    import os

    common = ["--model", "1", "--seeds", "3", "--seed", "5", "--epochs", "1", "--batch-size", "64",
              "--data-dir", str(synthetic_root), "--no-verify", "--device", "cpu"]
    assert main.main([*common, "--out-dir", str(tmp_path / "one")]) == 0
    assert main.main([*common, "--out-dir", str(tmp_path / "side"), "--jobs", "2"]) == 0
    for name in ("leaderboard.json", "leaderboard.md", "mnist_model_1_metrics.json", "mnist_model_1_params.pth",
                 *(f"mnist_model_1_seed{s}_metrics.json" for s in (5, 6, 7))):
        assert (tmp_path / "side" / "outputs" / name).is_file(), name
    seeds = json.loads((tmp_path / "side" / "outputs" / "leaderboard.json").read_text())["entries"][0]["seeds"]
    assert seeds == [5, 6, 7]
    for s in (5, 6, 7):
        one, side = (json.loads((tmp_path / d / "outputs" / f"mnist_model_1_seed{s}_metrics.json").read_text())
                     for d in ("one", "side"))
        assert side["environment"]["cpu_threads"] == max(1, (os.cpu_count() or 1) // 2)
        assert {k: v for k, v in side["config"].items() if k != "out_dir"} == \
            {k: v for k, v in one["config"].items() if k != "out_dir"}


def test_a_seed_failing_in_its_own_process_stops_the_leaderboard_with_its_message(synthetic_root, tmp_path, capsys):
    (synthetic_root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"not an IDX file")
    code = main.main(["--model", "1", "--seeds", "2", "--jobs", "2", "--epochs", "1", "--data-dir", str(synthetic_root),
                      "--no-verify", "--device", "cpu", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and ("seed 1 failed" in err or "seed 2 failed" in err)
    assert "train-images-idx3-ubyte" in err and "Traceback" not in err
    assert not (tmp_path / "outputs" / "leaderboard.json").exists()


@pytest.mark.parametrize("extra", [["--jobs", "2"], ["--jobs", "2", "--seeds", "2", "--seeds-at-once"], ["--jobs", "0"]])
def test_jobs_needs_several_seeds_trained_one_per_process(tmp_path, capsys, extra) -> None:
    code = main.main(["--model", "3", "--out-dir", str(tmp_path), *extra])
    assert code == 2 and "--jobs" in capsys.readouterr().err


def test_a_seeds_error_crosses_the_process_pool_whole_and_is_worded_as_it_would_be_alone(tmp_path) -> None:
    import pickle

    import config
    from core.artifacts import WriteError
    from training import jobs, runs

    errors = [config.ConfigError("max_lr", "must be > 0"), runs.Interrupted(3, tmp_path / "c.pt", finishing=True),
              runs.RunWriteError(WriteError(tmp_path / "m.json", "No space left on device"), 2, tmp_path / "c.pt")]
    for error in errors:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and vars(back) == vars(error) and str(back) == str(error)
    code, line = main.explain(jobs.SeedFailed(7, errors[0]), [], "leaderboard")
    assert code == 2 and line.startswith("main.py: seed 7 failed (argument --max-lr: must be > 0)")
    code, line = main.explain(jobs.SeedFailed(8, errors[2]), [], "leaderboard")
    assert code == 4 and "seed 8 failed (cannot write" in line and "No space left on device" in line
