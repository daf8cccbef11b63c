"""Model knobs (dropout, width, batch norm, initialisation): the defaults are the published networks, a knob changes
the model, is recorded with the run and is honoured wherever the weights are loaded back; a knob a model does not
have is one line and exit 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import acceleration
import hubconf
import main
import model_strategy
import zoo
from core.artifacts import ArtifactPaths
from models import knobs

PUBLISHED = {"1": 7_720, "2": 7_730, "3": 8_650, "fc": 235_146, "fc-deep": 567_434, "fc-bn": 1_497_994,
             "cnn": 1_199_882, "cnn-bn": 437_738}


def train(data: Path, model: str, *extra: str) -> int:
    return main.main(["--model", model, "--epochs", "1", "--batch-size", "50", "--data-dir", str(data), "--no-verify",
                      "--device", "cpu", "--no-tensorboard", *extra])


@pytest.mark.parametrize("key", list(PUBLISHED))
def test_every_knob_given_at_its_default_builds_the_published_network(key: str) -> None:
    strategy = model_strategy.get_strategy(key)
    torch.manual_seed(0)
    plain = strategy.get_model("cpu")
    torch.manual_seed(0)
    explicit = strategy.get_model("cpu", strategy.knobs)
    assert model_strategy.param_count(explicit) == PUBLISHED[key]
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), explicit.state_dict().values()))


@pytest.mark.parametrize("key", list(PUBLISHED))
def test_width_and_batch_norm_change_the_model(key: str) -> None:
    strategy = model_strategy.get_strategy(key)
    wide = strategy.get_model("cpu", {"width": 1.5})
    assert model_strategy.param_count(wide) > PUBLISHED[key]
    assert wide(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    if "batch_norm" in strategy.knobs:
        plain = strategy.get_model("cpu", {"batch_norm": False})
        assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in plain.modules())
        assert model_strategy.param_count(plain) < PUBLISHED[key]


def test_dropout_sets_every_dropout_layer() -> None:
    rates = {m.p for m in model_strategy.get_strategy("3").get_model("cpu", {"dropout": 0.1}).modules()
             if isinstance(m, nn.Dropout)}
    assert rates == {0.1}
    cnn = {m.p for m in model_strategy.get_strategy("cnn").get_model("cpu", {"dropout": 0.0}).modules()
           if isinstance(m, nn.Dropout)}
    assert cnn == {0.0}


@pytest.mark.parametrize(("scheme", "std"), [("kaiming", lambda fan_in, fan_out: (2 / fan_in) ** 0.5),
                                             ("xavier", lambda fan_in, fan_out: (2 / (fan_in + fan_out)) ** 0.5)])
def test_initialisation_draws_the_weights_by_its_scheme(scheme: str, std) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    net = model_strategy.get_strategy("fc").get_model("cpu", {"init": scheme})
    first = net.layers[1]
    assert abs(float(first.weight.detach().std()) - std(784, 256)) < 0.1 * std(784, 256)
    assert float(first.bias.detach().abs().max()) == 0.0
    torch.manual_seed(0)
    default = model_strategy.get_strategy("fc").get_model("cpu")
    assert not torch.equal(default.layers[1].weight, first.weight)


def test_unknown_initialisation_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="orthogonal"):
        knobs.initialise(nn.Linear(2, 2), "orthogonal")


def test_a_model_without_batch_norm_runs_the_same_fast_as_as_built() -> None:
    torch.manual_seed(0)
    net = model_strategy.get_strategy("3").get_model("cpu", {"batch_norm": False}).eval()
    x = torch.randn(8, 1, 28, 28)
    expected = net(x)
    fast, _ = acceleration.accelerate(net, "torch")
    torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-5)


def test_a_knob_is_recorded_listed_and_restored_on_load(runs: Path, data: Path, capsys) -> None:  # noqa: ANN001
    assert train(data, "3", "--width", "0.5", "--batch-norm", "off", "--dropout", "0", "--init", "kaiming",
                 "--name", "narrow") == 0
    root = runs / "mnist_model_3" / "narrow"
    settings = json.loads(ArtifactPaths("mnist_model_3", root).metrics.read_text())["config"]
    assert (settings["width"], settings["batch_norm"], settings["dropout"], settings["init"]) == (0.5, False, 0.0, "kaiming")
    assert "[dropout 0.0, width 0.5, batch norm False, init kaiming]" in ArtifactPaths("mnist_model_3", root).summary.read_text()
    model = zoo.load("3", root)  # from Python, as every mode loads it
    assert model_strategy.param_count(model) < PUBLISHED["3"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    capsys.readouterr()
    assert main.main(["--list-runs", "--model", "3"]) == 0
    assert "--width 0.5" in capsys.readouterr().out
    assert main.main(["--evaluate", "--model", "3", "--name", "narrow", "--data-dir", str(data), "--no-verify",
                      "--device", "cpu"]) == 0


def test_a_rerun_from_the_record_keeps_the_knobs(runs: Path, data: Path) -> None:
    assert train(data, "fc", "--width", "0.25", "--name", "first") == 0
    record = ArtifactPaths("mnist_model_fc", runs / "mnist_model_fc" / "first").metrics
    assert train(data, "fc", "--config", str(record), "--name", "again") == 0
    again = json.loads(ArtifactPaths("mnist_model_fc", runs / "mnist_model_fc" / "again").metrics.read_text())
    assert again["config"]["width"] == 0.25


@pytest.mark.parametrize(("argv", "flag", "words"), [
    (["--model", "fc", "--batch-norm", "off"], "--batch-norm", "model fc has no batch norm; models with it: 1, 2, 3"),
    (["--model", "3", "--width", "0"], "--width", "outside"),
    (["--model", "3", "--dropout", "1"], "--dropout", "outside"),
    (["--model", "3", "--init", "orthogonal"], "--init", "invalid choice"),
    (["--model", "3", "--batch-norm", "maybe"], "--batch-norm", "not on or off"),
])
def test_a_knob_the_model_lacks_or_a_bad_value_is_one_line_exit_2_nothing_written(
        runs: Path, data: Path, capsys, argv: list[str], flag: str, words: str) -> None:  # noqa: ANN001
    assert main.main([*argv, "--epochs", "1", "--data-dir", str(data), "--no-verify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert flag in err[-1] and words in err[-1] and "Traceback" not in "\n".join(err)
    assert not runs.exists()


def test_torch_hub_builds_a_model_with_knobs_and_keeps_the_reference_published() -> None:
    assert model_strategy.param_count(hubconf.v3(pretrained=False, width=2.0)) > PUBLISHED["3"]
    assert model_strategy.param_count(hubconf.v3(pretrained=True)) == PUBLISHED["3"]
    with pytest.raises(ValueError, match="pretrained=False"):
        hubconf.v3(pretrained=True, width=2.0)
