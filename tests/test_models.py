"""The zoo's contract: exact parameter counts, shapes, registry behaviour, committed summaries."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import model_strategy
from core.artifacts import REPO_ROOT

# The published counts: this table is the contract, not numbers read back from the code.
EXPECTED_PARAMS = {
    "1": 7_720,
    "2": 7_730,
    "3": 8_650,
    "fc": 235_146,
    "fc-deep": 567_434,
    "fc-bn": 1_497_994,
    "cnn": 1_199_882,
    "cnn-bn": 437_738,
}


@pytest.mark.parametrize("key,count", EXPECTED_PARAMS.items())
def test_parameter_count_matches_published_architecture(key: str, count: int) -> None:
    model = model_strategy.get_strategy(key).get_model("cpu")
    assert sum(p.numel() for p in model.parameters()) == count


def test_registry_lists_exactly_the_published_models_in_display_order() -> None:
    assert model_strategy.available_models() == list(EXPECTED_PARAMS)


@pytest.mark.parametrize("key", EXPECTED_PARAMS)
def test_forward_returns_finite_logits_and_eval_mode_is_deterministic(key: str) -> None:
    torch.manual_seed(0)
    model = model_strategy.get_strategy(key).get_model("cpu")
    x = torch.randn(4, 1, 28, 28)
    out = model(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("alias,key", [("v1", "1"), ("v2", "2"), ("V3", "3"), (" 3 ", "3")])
def test_aliases_resolve_to_the_same_architecture(alias: str, key: str) -> None:
    via_alias, via_key = model_strategy.get_strategy(alias), model_strategy.get_strategy(key)
    assert via_alias is via_key
    assert via_alias.builder is via_key.builder


def test_unknown_model_raises_value_error_listing_valid_keys() -> None:
    with pytest.raises(ValueError) as info:
        model_strategy.get_strategy("resnet")
    for key in EXPECTED_PARAMS:
        assert key in str(info.value)


def test_every_strategy_carries_a_description_and_a_recipe() -> None:
    for key in EXPECTED_PARAMS:
        strategy = model_strategy.get_strategy(key)
        assert strategy.description and strategy.recipe.epochs > 0 and strategy.recipe.batch_size > 0
        assert strategy.stem == f"mnist_model_{key}"


@pytest.mark.parametrize("key,count", EXPECTED_PARAMS.items())
def test_committed_summary_states_the_total(key: str, count: int) -> None:
    path = REPO_ROOT / "summaries" / f"mnist_model_{key}_summary.txt"
    assert path.is_file(), f"{path} is not committed (python main.py --model {key} --summary-only)"
    assert f"Total params: {count:,}" in path.read_text()


def test_models_are_built_from_stock_layers_only() -> None:
    """How a model runs fast is the acceleration layer's business; models/ says what the network is."""
    stock = (nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.BatchNorm1d, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d,
             nn.AdaptiveAvgPool2d, nn.Linear, nn.Flatten, nn.Sequential)
    for key in EXPECTED_PARAMS:
        model = model_strategy.get_strategy(key).get_model("cpu")
        for name, module in model.named_modules():
            if module is not model:
                assert type(module) in stock, f"model {key}: {name} is a {type(module).__name__}"


def test_conv_block_keeps_the_sequential_state_dict_keys() -> None:
    from models.blocks import conv_block

    reference = nn.Sequential(nn.Conv2d(8, 16, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(16), nn.Dropout(0.025))
    assert list(conv_block(8, 16, 0.025).state_dict()) == list(reference.state_dict())
