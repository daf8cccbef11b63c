"""Honest selection: the best epoch is chosen on a held-out validation split, and --patience stops early."""
from __future__ import annotations

from pathlib import Path

import torch

import data_utils
import main
import model_strategy
import visualization
from analysis import evaluation
from training import loop


def _history(val_accs: list[float]) -> loop.History:
    return loop.History([loop.EpochRecord(epoch=i + 1, train_loss=0, train_acc=0, test_loss=0, test_acc=50 + i,
                                                  lr=0.1, seconds=1, images_per_sec=1, elapsed=i, val_loss=0, val_acc=v)
                             for i, v in enumerate(val_accs)])


def test_best_validation_epoch_is_the_highest_and_the_earliest_on_ties() -> None:
    assert loop.best_validation_epoch(_history([90, 95, 94, 95, 93])).epoch == 2
    assert loop.best_validation_epoch(loop.History()) is None


def test_early_stopping_stops_at_the_expected_epoch_on_a_scripted_metric() -> None:
    scripted = [90, 95, 94, 94.5, 96, 95, 95.5, 95.9]
    stopper = loop.EarlyStopping(patience=3)
    stops = [stopper.should_stop(_history(scripted[:n])) for n in range(1, len(scripted) + 1)]
    # best is epoch 2 until epoch 5 improves it; epochs 6, 7, 8 do not: the third of them stops the run
    assert stops == [False, False, False, False, False, False, False, True]


def test_validation_split_selects_an_epoch_and_saves_its_weights(synthetic_root: Path, tmp_path: Path) -> None:
    assert main.main(["--model", "fc", "--epochs", "3", "--val-split", "64", "--data-dir", str(synthetic_root),
                      "--out-dir", str(tmp_path), "--no-verify", "--device", "cpu"]) == 0
    metrics = visualization.load_metrics_json("mnist_model_fc", tmp_path)
    epochs = metrics["history"]["epochs"]
    chosen = metrics["summary"]["selected_on_validation"]
    best = max(epochs, key=lambda e: (e["val_acc"], -e["epoch"]))
    assert chosen["epoch"] == best["epoch"] and chosen["val_acc"] == best["val_acc"]
    assert chosen["test_acc"] == best["test_acc"] and "validation" in chosen["note"]
    assert metrics["summary"]["final_test_acc"] == epochs[-1]["test_acc"]  # both reported, each labelled
    best_params = torch.load(tmp_path / "outputs" / "mnist_model_fc_best_params.pth", weights_only=True)
    model = model_strategy.get_strategy("fc").get_model()
    model.load_state_dict(best_params)
    # the saved file holds the chosen epoch's weights: they score its validation accuracy again
    splits = data_utils.load_mnist(synthetic_root, verify=False)
    pipeline = data_utils.build_pipeline(splits, "tensor", 128, seed=1, val_split=64)
    assert evaluation.evaluate(model, pipeline.val)[1] == chosen["val_acc"]


def test_patience_ends_the_run_after_k_epochs_without_validation_improvement(synthetic_root, tmp_path) -> None:
    assert main.main(["--model", "fc", "--epochs", "40", "--val-split", "64", "--patience", "2",
                      "--data-dir", str(synthetic_root), "--out-dir", str(tmp_path), "--no-verify",
                      "--device", "cpu"]) == 0
    summary = visualization.load_metrics_json("mnist_model_fc", tmp_path)["summary"]
    assert summary["epochs_run"] < 40
    assert summary["stopped_early_after_epoch"] == summary["epochs_run"]
    assert summary["epochs_run"] - summary["selected_on_validation"]["epoch"] == 2
