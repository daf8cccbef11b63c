"""--seeds K --seeds-at-once: K seeds as one network of side-by-side copies, split back into K ordinary runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import main
import model_strategy
from training.seeds_at_once import SeedStack, widen


def _models(key: str, seeds: list[int]) -> list[nn.Module]:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = model_strategy.get_strategy(key).get_model("cpu")
        for module in model.modules():  # no random draws: train mode becomes deterministic to compare
            if isinstance(module, nn.Dropout):
                module.p = 0.0
        models.append(model.double())  # float64: rounding never flips a ReLU between the two ways of computing
    return models


@pytest.mark.parametrize("key", model_strategy.available_models())
def test_each_copy_in_a_stack_trains_exactly_like_its_own_model(key: str) -> None:
    models = _models(key, [1, 2, 3])
    stack = SeedStack(models).train()
    torch.manual_seed(0)
    x, labels = torch.rand(6, 3, 28, 28, dtype=torch.float64), torch.randint(0, 10, (6, 3))  # each seed its own batch
    logits = stack(x)
    F.cross_entropy(logits.movedim(2, 1), labels, reduction="none").mean(0).sum().backward()
    grads = dict(stack.net.named_parameters())
    for s, model in enumerate(models):
        alone = model.train()(x[:, s:s + 1])
        F.cross_entropy(alone, labels[:, s]).backward()
        torch.testing.assert_close(logits[:, s], alone, rtol=1e-9, atol=1e-12)
        for name, p in model.named_parameters():
            g = grads[name].grad
            mine = g[s] if g.dim() == p.dim() + 1 else g.chunk(3)[s]
            torch.testing.assert_close(mine, p.grad, rtol=1e-8, atol=1e-11, msg=f"{key} {name} seed {s}")


def test_a_stack_splits_back_into_each_seeds_weights_bit_for_bit() -> None:
    models = _models("3", [4, 5])
    stack = SeedStack(models)
    for model, state in zip(models, stack.split()):
        fresh = model_strategy.get_strategy("3").get_model("cpu")
        fresh.load_state_dict(state)
        for name, value in model.state_dict().items():
            assert torch.equal(fresh.state_dict()[name], value), name


def test_layers_that_would_mix_the_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="LayerNorm"):
        widen(nn.Sequential(nn.Flatten(), nn.LayerNorm(784)), 2)


def test_seeds_at_once_write_one_ordinary_run_per_seed(synthetic_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main.main(["--model", "1", "--seeds", "2", "--seeds-at-once", "--epochs", "2", "--batch-size", "64",
                      "--data-dir", str(synthetic_root), "--out-dir", str(out), "--no-verify", "--device", "cpu"]) == 0
    assert "at once" in capsys.readouterr().out
    board = {e["key"]: e for e in json.loads((out / "outputs" / "leaderboard.json").read_text())["entries"]}
    assert board["1"]["seeds"] == [1, 2]
    for seed in (1, 2):
        record = json.loads((out / "outputs" / f"mnist_model_1_seed{seed}_metrics.json").read_text())
        assert record["config"]["seed"] == seed and record["summary"]["seeds_at_once"]["seeds"] == [1, 2]
        first, second = record["history"]["epochs"]
        assert second["train_loss"] < first["train_loss"]  # each copy learned
    # the first seed's weights are an ordinary model's
    model = model_strategy.load_trained("1", out, "cpu")
    assert model_strategy.param_count(model) == 7_720


@pytest.mark.parametrize("extra,flag", [([], "seeds-at-once"), (["--seeds", "2", "--val-split", "100"], "val-split"),
                                        (["--seeds", "2", "--scheduler", "plateau"], "scheduler")])
def test_seeds_at_once_refuses_what_it_cannot_do_naming_the_flag(synthetic_root, tmp_path, capsys, extra, flag):
    code = main.main(["--model", "1", "--seeds-at-once", "--epochs", "1", "--data-dir", str(synthetic_root),
                      "--out-dir", str(tmp_path), "--no-verify", "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err
