"""main.py end to end on small data: the four artifacts, loading them back, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch

import main
import model_strategy
import visualization
from model_strategy import IncompatibleWeightsError
from tests.conftest import ROOT

EPOCH_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "lr",
              "seconds", "images_per_sec", "elapsed", "started"}


def _train(data: Path, out: Path, *extra: str) -> dict:
    args = ["--data-dir", str(data), "--out-dir", str(out), "--no-verify", "--device", "cpu", *extra]
    assert main.main(args) == 0
    key = model_strategy.get_strategy(extra[extra.index("--model") + 1]).key
    return visualization.load_metrics_json(f"mnist_model_{key}", out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    from tests.conftest import write_idx_set

    base = tmp_path_factory.mktemp("run")
    data = write_idx_set(base / "data", n_train=300, n_test=100)
    metrics = _train(data, base / "out", "--model", "3", "--epochs", "2", "--subset", "256", "--batch-size", "32")
    return base, metrics


def test_one_run_writes_all_four_artifacts(trained) -> None:
    base, _ = trained
    for path in ("outputs/mnist_model_3_params.pth", "outputs/mnist_model_3_metrics.json",
                 "summaries/mnist_model_3_summary.txt", "plots/mnist_model_3.png"):
        assert (base / "out" / path).is_file(), path
    assert not list((base / "out").rglob("*.tmp")), "a temporary file was left behind"


def test_metrics_json_has_config_history_and_summary(trained) -> None:
    _, metrics = trained
    assert metrics["config"]["model"] == "3" and metrics["config"]["seed"] == 1
    assert metrics["config"]["optimizer"] == "sgd" and metrics["config"]["max_lr"] == 0.75
    assert metrics["environment"]["torch"] == torch.__version__
    epochs = metrics["history"]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(set(e) == EPOCH_KEYS for e in epochs)
    assert len(metrics["history"]["batch_train_loss"]) == 2 * 8  # 256 images / batch 32, two epochs
    summary = metrics["summary"]
    assert metrics["status"] == "complete"
    assert summary["params"] == 8650 and summary["final_test_acc"] == epochs[-1]["test_acc"]
    assert summary["selected_on_validation"] is None and summary["stopped_early_after_epoch"] is None
    assert "test set" in summary["best_test_acc_selected_on_test"]["note"]


def test_plot_opens_and_summary_states_the_parameter_count(trained) -> None:
    base, _ = trained
    image = matplotlib.image.imread(base / "out" / "plots" / "mnist_model_3.png")
    assert image.ndim == 3 and image.shape[0] > 100
    assert "Total params: 8,650" in (base / "out" / "summaries" / "mnist_model_3_summary.txt").read_text()


def test_saved_params_load_with_weights_only_and_reproduce_the_model(trained) -> None:
    base, _ = trained
    path = base / "out" / "outputs" / "mnist_model_3_params.pth"
    state = torch.load(path, weights_only=True)
    model = model_strategy.get_strategy("3").get_model()
    model.load_state_dict(state)
    model.eval()
    loaded = model_strategy.load_trained("v3", out_dir=base / "out")
    again = visualization.load_model_params(model_strategy.get_strategy("3").get_model(), "mnist_model_3",
                                            base / "out").eval()
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(loaded(x), model(x)) and torch.equal(again(x), model(x))


def test_training_learns_the_synthetic_digits(synthetic_root: Path, tmp_path: Path) -> None:
    metrics = _train(synthetic_root, tmp_path, "--model", "fc", "--epochs", "3", "--batch-size", "32")
    epochs = metrics["history"]["epochs"]
    assert epochs[-1]["test_acc"] > 80  # ten classes: chance is 10%
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]


def test_weights_for_another_model_raise_an_error_naming_both(trained) -> None:
    base, _ = trained
    with pytest.raises(IncompatibleWeightsError, match=r"holds weights for model 3, not for model 1"):
        visualization.load_model_params(model_strategy.get_strategy("1").get_model(), "mnist_model_3", base / "out")
    src = base / "out" / "outputs" / "mnist_model_3_params.pth"
    dst = base / "out" / "outputs" / "mnist_model_fc_params.pth"
    dst.write_bytes(src.read_bytes())
    with pytest.raises(IncompatibleWeightsError, match=r"mnist_model_fc_params.pth: holds weights for model 3, not for model fc"):
        model_strategy.load_trained("fc", out_dir=base / "out")


def test_truncated_or_missing_weights_are_named(tmp_path: Path, trained) -> None:
    base, _ = trained
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    with pytest.raises(IncompatibleWeightsError, match="no saved weights for model 2"):
        model_strategy.load_trained("2", out_dir=tmp_path)
    good = (base / "out" / "outputs" / "mnist_model_3_params.pth").read_bytes()
    (outputs / "mnist_model_3_params.pth").write_bytes(good[: len(good) // 2])
    with pytest.raises(IncompatibleWeightsError, match="not a readable weights file for model 3"):
        model_strategy.load_trained("3", out_dir=tmp_path)


def test_same_seed_repeats_a_cpu_run_exactly(trained, tmp_path: Path) -> None:
    base, first = trained
    again = _train(base / "data", tmp_path, "--model", "3", "--epochs", "2", "--subset", "256", "--batch-size", "32")
    timings = ("seconds", "images_per_sec", "elapsed", "started")
    strip = [{k: v for k, v in e.items() if k not in timings} for e in first["history"]["epochs"]]
    assert strip == [{k: v for k, v in e.items() if k not in timings} for e in again["history"]["epochs"]]
    assert first["history"]["batch_train_loss"] == again["history"]["batch_train_loss"]


@pytest.mark.parametrize("scheduler", ["step", "plateau", "cosine", "none"])
def test_every_scheduler_trains_through_the_same_loop(synthetic_root: Path, tmp_path: Path, scheduler: str) -> None:
    metrics = _train(synthetic_root, tmp_path, "--model", "fc", "--epochs", "1", "--scheduler", scheduler,
                     "--val-split", "32")
    assert metrics["config"]["scheduler"] == scheduler and metrics["config"]["optimizer"] == "adam"
    assert metrics["history"]["epochs"][0]["val_acc"] is not None
    assert metrics["data"] == {"train_images": 224, "val_images": 32, "test_images": 64, "val_split": "random"}


def test_explicit_flags_override_the_recipe_and_optimizer_defaults_follow_the_optimizer(synthetic_root, tmp_path):
    metrics = _train(synthetic_root, tmp_path, "--model", "fc", "--epochs", "1", "--optimizer", "sgd",
                     "--batch-size", "64", "--max-lr", "0.05", "--label-smoothing", "0.1")
    config = metrics["config"]
    assert (config["optimizer"], config["batch_size"], config["max_lr"], config["label_smoothing"]) == ("sgd", 64, 0.05, 0.1)
    assert config["momentum"] == 0.9 and config["lr"] is None  # onecycle sets the rate itself: lr is not read
    assert config["scheduler_constants"] == {"pct_start": 0.3, "div_factor": 7.5, "final_div_factor": 7.5,
                                             "anneal_strategy": "cos"}
    assert config["cuda_graph"] is None and config["backend"] in ("native", "torch")  # a CPU run
    assert metrics["environment"]["backend"] == config["backend"] and "commit" in metrics["environment"]["git"]


def test_rates_of_another_optimizer_follow_that_optimizer(synthetic_root, tmp_path):
    metrics = _train(synthetic_root, tmp_path, "--model", "fc", "--epochs", "1", "--optimizer", "sgd",
                     "--scheduler", "step")
    assert metrics["config"]["lr"] == 0.1 and metrics["config"]["max_lr"] is None  # SGD's own rate, not Adam's


@pytest.mark.parametrize("argv,flag,reader", [
    (["--model", "3", "--lr", "0.1"], "--lr", "scheduler onecycle"),
    (["--model", "3", "--scheduler", "step", "--max-lr", "0.5"], "--max-lr", "scheduler step"),
    (["--model", "fc", "--momentum", "0.5"], "--momentum", "optimizer adam"),
    (["--model", "3", "--device", "cpu", "--cuda-graph"], "--cuda-graph", "device cpu"),
])
def test_a_flag_the_chosen_strategies_do_not_read_is_refused_naming_both(tmp_path, capsys, argv, flag, reader):
    code = main.main([*argv, "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and f"argument {flag}: the {reader} does not read it" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["--evaluate", "--predict", "x.png"], ["--summary-only", "--evaluate"],
                                  ["--list-models", "--predict-csv", "x.csv"], ["--evaluate", "--resume"]])
def test_modes_are_mutually_exclusive(tmp_path, capsys, argv) -> None:
    code = main.main([*argv, "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and ("cannot be combined with" in err or "not allowed with" in err)
    assert all(flag in err for flag in argv if flag.startswith("--")) and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_help_groups_the_flags_and_makes_the_modes_one_exclusive_group() -> None:
    parser = main.build_parser()
    groups = {g.title: [a.option_strings[0] for a in g._group_actions] for g in parser._action_groups}
    assert {"model and recipe", "data and augmentation", "output", "speed", "modes"} <= groups.keys()
    assert "--model" in groups["model and recipe"] and "--augment" in groups["data and augmentation"]
    assert "--backend" in groups["speed"] and "--out-dir" in groups["output"]
    exclusive = {a.option_strings[0] for g in parser._mutually_exclusive_groups for a in g._group_actions}
    assert {"--evaluate", "--predict", "--export", "--inspect", "--list-models"} <= exclusive
    shown = main.build_parser().format_help()
    assert all(f"\n{title}:" in shown for title in ("model and recipe", "speed", "modes"))


def test_torchvision_loader_runs_the_same_loop(synthetic_root: Path, tmp_path: Path) -> None:
    metrics = _train(synthetic_root, tmp_path, "--model", "1", "--epochs", "1", "--loader", "torchvision",
                     "--augment", "rotation", "--batch-size", "64")
    assert metrics["config"]["loader"] == "torchvision" and len(metrics["history"]["epochs"]) == 1


def test_missing_or_corrupt_data_exits_2_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    from tests.conftest import write_idx_set

    root = write_idx_set(tmp_path / "data")
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--data-dir", str(root), "--out-dir",
                           str(tmp_path / "out"), "--epochs", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "train-images-idx3-ubyte" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_list_models_prints_every_key_with_its_parameter_count(capsys) -> None:
    assert main.main(["--list-models"]) == 0
    text = capsys.readouterr().out
    for key in model_strategy.available_models():
        strategy = model_strategy.get_strategy(key)
        assert f"{strategy.num_params():,}" in text and key in text


def test_summary_only_writes_the_summary_without_training(tmp_path: Path) -> None:
    assert main.main(["--model", "cnn-bn", "--summary-only", "--out-dir", str(tmp_path)]) == 0
    assert "Total params: 437,738" in (tmp_path / "summaries" / "mnist_model_cnn-bn_summary.txt").read_text()
    assert not (tmp_path / "outputs").exists()


def test_real_mnist_subset_run_end_to_end(mnist_root: Path, tmp_path: Path) -> None:
    import config
    from training import runs

    cfg = config.resolve("3", {"epochs": 1, "subset": 3000, "data_dir": str(mnist_root), "out_dir": str(tmp_path)})
    metrics = runs.train_and_save(cfg)
    assert metrics["data"] == {"train_images": 3000, "val_images": 0, "test_images": 10_000, "val_split": None}
    assert metrics["summary"]["final_test_acc"] > 20  # 24 steps of a whole OneCycle: well above chance, no more
    json.dumps(metrics)


def test_help_states_each_default_once_and_never_as_none() -> None:
    parser = main.build_parser()
    formatter = parser._get_formatter()
    helps = {a.dest: formatter._get_help_string(a) for a in parser._actions}
    assert all(h.count("(default:") <= 1 for h in helps.values())  # a help naming its default gets no second
    assert not any("(default: None)" in h for h in helps.values())
    assert helps["loader"].endswith("(default: %(default)s)")  # a plain default is still shown


def test_a_runs_summary_describes_the_model_as_built_not_its_accelerated_copy(synthetic_root: Path, tmp_path: Path) -> None:
    _train(synthetic_root, tmp_path, "--model", "3", "--epochs", "1", "--batch-size", "64", "--augment", "none")
    written = (tmp_path / "summaries" / "mnist_model_3_summary.txt").read_text()
    main.main(["--model", "3", "--summary-only", "--out-dir", str(tmp_path / "alone")])
    assert written == (tmp_path / "alone" / "summaries" / "mnist_model_3_summary.txt").read_text()
    assert "MaxPool2d" in written and "PointwiseConvPool" not in written and "Identity" not in written


def test_the_cli_imports_torchvision_only_for_the_classic_loader_and_the_download_and_matplotlib_only_to_draw(
        tmp_path):
    # torchvision (and the torch._dynamo it pulls in) adds about a second to every start, matplotlib half of one;
    # --predict and --list-models need neither, and the tensor loader no torchvision.
    from PIL import Image  # noqa: PLC0415

    bar = Image.new("L", (60, 60), 255)
    bar.paste(0, (26, 8, 34, 52))  # a 1: read, the detector asked, nothing drawn
    bar.save(tmp_path / "bar.png")
    code = (f"import sys, main, data_utils; main.main(['--list-models']); main.main(['--model', '3', '--predict',"
            f" {str(tmp_path / 'bar.png')!r}]); print('torchvision' in sys.modules, 'matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False False"
