"""The zoo's contract: exact parameter counts, shapes, registry behaviour, committed summaries."""
from __future__ import annotations

import pytest
import torch

import model_strategy
from artifacts import REPO_ROOT
from models.blocks import Dropout, drop_positions

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


def test_sparse_dropout_drops_at_the_requested_rate_and_rescales() -> None:
    torch.manual_seed(0)
    layer = Dropout(0.025)
    x = torch.ones(64, 16, 24, 24).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = layer(x)
    y.sum().backward()
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.025) < 0.002  # 590k draws: 5 standard deviations is ~0.001
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.975))
    assert torch.equal(x.grad == 0, y == 0)
    layer.eval()
    assert torch.equal(layer(x), x)


def test_drop_positions_are_distinct_and_in_range() -> None:
    torch.manual_seed(1)
    positions = drop_positions(100_000, 0.05)
    assert len(positions.unique()) == len(positions)
    assert positions.min() >= 0 and positions.max() < 100_000
    assert abs(len(positions) / 100_000 - 0.05) < 0.005


@pytest.mark.parametrize("channels", [8, 10, 16])
def test_zoo_batchnorm_computes_what_the_stock_one_does(channels):
    from models.blocks import BatchNorm2d

    torch.manual_seed(0)
    ours, stock = BatchNorm2d(channels), torch.nn.BatchNorm2d(channels)
    x = torch.randn(32, channels, 12, 12).contiguous(memory_format=torch.channels_last).requires_grad_()
    x_stock = x.detach().clone().requires_grad_()
    out, out_stock = ours(x), stock(x_stock)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_stock.backward(grad)
    torch.testing.assert_close(out, out_stock)
    torch.testing.assert_close(x.grad, x_stock.grad)
    for (name, a), b in zip(ours.state_dict().items(), stock.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


# The stock nn.BatchNorm2d itself differs by up to ~1e-4 between channels-last and default-layout
# inputs of these sizes (its two kernels sum the statistics in different orders): that is the rounding.
LAYOUT_ROUNDING = {"rtol": 1e-4, "atol": 2e-4}


@pytest.fixture(params=["c_kernel", "torch_ops"])
def fused_backend(request, monkeypatch) -> str:
    """Run a test once with the C kernel (where this machine can build it) and once with PyTorch ops."""
    from models import native

    if request.param == "c_kernel" and native.kernel() is None:
        pytest.skip("the C kernel is not available here")
    if request.param == "torch_ops":
        monkeypatch.setattr(native, "supports", lambda x: False)
    return request.param


@pytest.mark.parametrize("channels,layout", [(8, "channels_last"), (10, "channels_last"), (16, "channels_last"),
                                             (8, "contiguous_format"), (16, "contiguous_format")])
def test_fused_conv_block_trains_like_its_modules_run_in_order(channels: int, layout: str, fused_backend: str) -> None:
    from models.blocks import ConvBlock, conv_block

    torch.manual_seed(0)
    block = conv_block(channels, channels, dropout=0.05).train()
    assert isinstance(block, ConvBlock)
    block[0] = torch.nn.Identity()  # feed the activation straight to ReLU -> BN -> Dropout
    stock = torch.nn.BatchNorm2d(channels)
    stock.load_state_dict(block[2].state_dict())
    activation = torch.randn(64, channels, 12, 12).contiguous(memory_format=getattr(torch, layout))
    x, x_stock = activation.clone().requires_grad_(), activation.clone().requires_grad_()
    assert block._fusable(x)

    out = block(x)
    mask = (out != 0).float()  # the dropped positions (a kept activation is exactly 0 with probability ~0)
    out_stock = stock(torch.relu(x_stock)) * mask / 0.95
    assert abs(1 - mask.mean().item() - 0.05) < 0.01
    grad = torch.randn_like(out)
    out.backward(grad)
    out_stock.backward(grad)

    torch.testing.assert_close(out, out_stock, **LAYOUT_ROUNDING)
    torch.testing.assert_close(x.grad, x_stock.grad, **LAYOUT_ROUNDING)
    torch.testing.assert_close(block[2].weight.grad, stock.weight.grad, **LAYOUT_ROUNDING)
    torch.testing.assert_close(block[2].bias.grad, stock.bias.grad, **LAYOUT_ROUNDING)
    for name, value in stock.state_dict().items():  # running statistics and the batch counter
        torch.testing.assert_close(block[2].state_dict()[name], value, msg=name, **LAYOUT_ROUNDING)
    assert out.is_contiguous(memory_format=torch.channels_last)  # what the next convolution wants
    assert x.grad.is_contiguous(memory_format=getattr(torch, layout))  # what the previous one gave


def test_c_kernel_is_built_wherever_linux_has_a_c_compiler() -> None:
    import platform
    import shutil

    from models import native

    if platform.system() != "Linux" or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here: training uses PyTorch ops")
    assert native.kernel() is not None
    assert native.supports(torch.zeros(2, 10, 4, 4).contiguous(memory_format=torch.channels_last))


def test_c_kernel_can_be_switched_off_from_the_environment(monkeypatch) -> None:
    from models import native

    monkeypatch.setenv(native.SWITCH, "0")
    native.kernel.cache_clear()
    try:
        assert native.kernel() is None
        assert not native.supports(torch.zeros(2, 16, 4, 4).contiguous(memory_format=torch.channels_last))
    finally:
        monkeypatch.undo()
        native.kernel.cache_clear()


def test_activations_the_c_kernel_cannot_tile_train_through_torch_ops() -> None:
    from models import native
    from models.blocks import conv_block

    odd = torch.randn(3, 10, 5, 5).contiguous(memory_format=torch.channels_last)  # 75 pixels x 10: no whole tiles
    assert not native.supports(odd)
    block = conv_block(10, 10, dropout=0.05).train()
    block[0] = torch.nn.Identity()
    x = odd.clone().requires_grad_()
    block(x).sum().backward()
    assert torch.isfinite(x.grad).all() and block[2].num_batches_tracked.item() == 1


def test_zoo_max_pool_matches_the_stock_one_including_ties_and_nan() -> None:
    from models import native
    from models.blocks import MaxPool2d

    torch.manual_seed(0)
    x = torch.randn(4, 10, 24, 24)
    x[0, :, :2, :2] = 1.5  # four equal values: the first wins in both
    x[0, :, 2, 3] = x[0, :, 3, 2] = 9.0  # two equal winners, top-right and bottom-left
    x[1, 3, 4, 5] = float("nan")  # a NaN wins its window in both
    x[2, 1, 6:8, 6:8] = float("nan")  # a window of NaNs
    x = x.contiguous(memory_format=torch.channels_last)
    if native.kernel() is not None:
        assert native.supports_max_pool(x)
    ours, stock = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_stock = MaxPool2d(2)(ours), torch.nn.MaxPool2d(2)(stock)
    grad = torch.randn_like(out_stock)
    out.backward(grad)
    out_stock.backward(grad)
    assert torch.equal(out.isnan(), out_stock.isnan()) and out.isnan().any()
    assert torch.equal(out.nan_to_num(), out_stock.nan_to_num())
    assert torch.equal(ours.grad, stock.grad)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("shape", [(2, 10, 7, 7), (2, 10, 5, 4)])
def test_zoo_max_pool_falls_back_to_the_stock_one_for_odd_sizes(shape) -> None:
    from models import native
    from models.blocks import MaxPool2d

    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    assert not native.supports_max_pool(x)
    assert torch.equal(MaxPool2d(2)(x), torch.nn.functional.max_pool2d(x, 2))


def test_zoo_max_pool_odd_channel_counts_and_tails_match_the_stock_one() -> None:
    from models.blocks import MaxPool2d

    torch.manual_seed(1)
    x = torch.randn(3, 7, 6, 10).contiguous(memory_format=torch.channels_last)  # rows of 35 outputs: a tail
    ours, stock = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_stock = MaxPool2d(2)(ours), torch.nn.functional.max_pool2d(stock, 2)
    grad = torch.randn_like(out_stock)
    out.backward(grad)
    out_stock.backward(grad)
    assert torch.equal(out, out_stock) and torch.equal(ours.grad, stock.grad)


def test_conv_block_runs_its_children_in_order_when_a_child_has_a_hook() -> None:
    from models.blocks import conv_block

    block = conv_block(8, 16, dropout=0.025).train().to(memory_format=torch.channels_last)
    seen = []
    block[2].register_forward_hook(lambda module, args, output: seen.append(output.shape))
    block(torch.randn(4, 8, 12, 12).contiguous(memory_format=torch.channels_last))
    assert seen == [torch.Size([4, 16, 10, 10])]


def test_conv_block_keeps_the_sequential_state_dict_keys() -> None:
    from models.blocks import conv_block

    reference = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, bias=False), torch.nn.ReLU(), torch.nn.BatchNorm2d(16),
                                    torch.nn.Dropout(0.025))
    assert list(conv_block(8, 16, 0.025).state_dict()) == list(reference.state_dict())


def test_drop_gaps_follow_the_geometric_distribution() -> None:
    torch.manual_seed(2)
    p, n = 0.025, 4_000_000
    gaps = drop_positions(n, p).diff().double()  # ~100k gaps between consecutive drops
    assert abs(gaps.mean().item() - 1 / p) < 0.5  # 1/p = 40; the mean's standard error is ~0.12
    assert abs(gaps.var().item() / ((1 - p) / p**2) - 1) < 0.03
    assert gaps.min().item() >= 1
    assert abs((gaps == 1).double().mean().item() - p) < 0.003  # P(gap = 1) = p


def test_zoo_max_pool_backward_matches_the_stock_one_bit_for_bit_on_signed_zeros() -> None:
    from models.blocks import MaxPool2d

    x = torch.randn(2, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    ours, stock = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.full((2, 16, 2, 2), -0.0).contiguous(memory_format=torch.channels_last)
    MaxPool2d(2)(ours).backward(grad)
    torch.nn.functional.max_pool2d(stock, 2).backward(grad)
    assert torch.equal(ours.grad.signbit(), stock.grad.signbit())
