"""Every training run writes TensorBoard events that tensorboard reads; a resumed run continues its own."""
from __future__ import annotations

import pytest

import main


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(s.step, s.value) for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_run_writes_per_batch_and_per_epoch_scalars_hparams_and_figures(synthetic_root, tmp_path) -> None:
    argv = ["--model", "fc", "--epochs", "2", "--batch-size", "64", "--data-dir", str(synthetic_root), "--no-verify",
            "--device", "cpu", "--out-dir", str(tmp_path)]
    assert main.main(argv) == 0
    [run] = (tmp_path / "events" / "mnist_model_fc").iterdir()
    assert "-seed1" in run.name
    scalars = _scalars(run)
    assert [step for step, _ in scalars["epoch/test_acc"]] == [1, 2]
    assert len(scalars["batch/train_loss"]) == 2 * 4  # 256 images in batches of 64, two epochs
    assert [step for step, _ in scalars["batch/train_loss"]] == list(range(1, 9))
    assert {"epoch/lr", "epoch/train_loss", "hparam/final_test_acc"} <= scalars.keys()
    import json
    record = json.loads((tmp_path / "outputs" / "mnist_model_fc_metrics.json").read_text())
    assert scalars["epoch/test_acc"][-1][1] == pytest.approx(record["summary"]["final_test_acc"])
    assert main.main([*argv, "--no-tensorboard"]) == 0
    assert len(list((tmp_path / "events" / "mnist_model_fc").iterdir())) == 1  # the second run wrote none


def test_a_resumed_run_continues_its_own_event_folder(synthetic_root, tmp_path, monkeypatch) -> None:
    from training import loop

    real, calls = loop.train_one_epoch, {"n": 0}

    def stop_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    argv = ["--model", "fc", "--epochs", "2", "--data-dir", str(synthetic_root), "--no-verify", "--device", "cpu",
            "--out-dir", str(tmp_path)]
    monkeypatch.setattr(loop, "train_one_epoch", stop_in_epoch_two)
    assert main.main(argv) == 130
    monkeypatch.setattr(loop, "train_one_epoch", real)
    assert main.main([*argv, "--resume"]) == 0
    [run] = (tmp_path / "events" / "mnist_model_fc").iterdir()
    assert [step for step, _ in _scalars(run)["epoch/test_acc"]] == [1, 2]


def test_a_resumed_seed_finds_its_own_folder_not_a_longer_seeds(tmp_path) -> None:
    from training.events import folder

    for name in ("20261204-100000-seed10", "20261204-090000-seed1", "20261204-090000-seed1-2"):
        (tmp_path / "events" / "s" / name).mkdir(parents=True)
    assert folder(tmp_path, "s", 1, resume=True).name == "20261204-090000-seed1-2"
    assert folder(tmp_path, "s", 10, resume=True).name == "20261204-100000-seed10"
    assert not folder(tmp_path, "s", 1, resume=False).exists()  # a new run: a new folder
