"""The execution layer: every backend computes what the stock model does (to rounding), same state_dict."""
from __future__ import annotations

import copy
import platform
import shutil

import pytest
import torch
from torch import nn

import acceleration
import model_strategy
from acceleration import fused, native, ops
from acceleration.fused import FusedConvBlock, FusedMaxPool2d, FusedSequential, PointwiseConvPool, drop_positions
from models.blocks import conv_block

HAS_KERNELS = native.library() is not None

# The stock nn.BatchNorm2d itself differs by up to ~1e-4 between channels-last and default-layout
# inputs of these sizes (its two kernels sum the statistics in different orders): that is the rounding.
LAYOUT_ROUNDING = {"rtol": 1e-4, "atol": 2e-4}


@pytest.fixture(params=["native", "torch"])
def backend(request) -> str:
    if request.param == "native" and not HAS_KERNELS:
        pytest.skip("the C kernels are not available here")
    return request.param


@pytest.mark.parametrize("key", model_strategy.available_models())
def test_accelerated_models_keep_the_state_dict_and_predict_like_the_stock_one(key: str, backend: str) -> None:
    torch.manual_seed(0)
    stock = model_strategy.get_strategy(key).get_model("cpu").eval()
    fast = model_strategy.get_strategy(key).get_model("cpu")
    fast.load_state_dict(stock.state_dict())
    fast, name = acceleration.accelerate(fast, backend)
    assert name == backend and list(fast.state_dict()) == list(stock.state_dict())
    x = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(fast.eval()(x), stock(x), rtol=1e-4, atol=1e-4)


def test_the_tiny_nets_blocks_and_pool_are_swapped_and_the_none_backend_changes_nothing() -> None:
    model, name = acceleration.accelerate(model_strategy.get_strategy("3").get_model("cpu"), "native"
                                          if HAS_KERNELS else "torch")
    assert sum(isinstance(m, FusedConvBlock) for m in model.modules()) == 7
    stem = model.features[0]  # ... 1x1 conv -> max-pool: one kernel, the pool's slot passes its output on
    assert (type(stem[2]), type(stem[3])) == ((PointwiseConvPool, nn.Identity) if HAS_KERNELS else (nn.Conv2d, nn.MaxPool2d))
    assert type(stem) is (FusedSequential if HAS_KERNELS else nn.Sequential)  # block -> 1x1 conv -> pool: one kernel
    assert not any(isinstance(m, FusedMaxPool2d) for m in model.modules())  # V3's one pool went into the stem
    plain = model_strategy.get_strategy("3").get_model("cpu")
    same, name = acceleration.accelerate(plain, "none")
    assert same is plain and name == "none" and not any(isinstance(m, FusedConvBlock) for m in same.modules())


def test_auto_picks_the_kernels_where_they_build_and_refuses_cpu_backends_on_a_gpu() -> None:
    assert acceleration.resolve("auto", "cpu") == ("native" if HAS_KERNELS else "torch")
    assert acceleration.resolve("auto", "cuda") == "channels-last"
    with pytest.raises(acceleration.AccelerationError, match="CPU only"):
        acceleration.resolve("native", "cuda")
    with pytest.raises(acceleration.AccelerationError, match="unknown backend"):
        acceleration.resolve("fast", "cpu")


@pytest.mark.parametrize("channels,layout", [(8, "channels_last"), (10, "channels_last"), (16, "channels_last"),
                                             (8, "contiguous_format"), (16, "contiguous_format")])
def test_fused_conv_block_trains_like_its_modules_run_in_order(channels: int, layout: str, backend: str) -> None:
    torch.manual_seed(0)
    block = FusedConvBlock(conv_block(channels, channels, dropout=0.05), native=backend == "native").train()
    block[0] = nn.Identity()  # feed the activation straight to ReLU -> BN -> Dropout
    stock = nn.BatchNorm2d(channels)
    stock.load_state_dict(block[2].state_dict())
    activation = torch.randn(64, channels, 12, 12).contiguous(memory_format=getattr(torch, layout))
    x, x_stock = activation.clone().requires_grad_(), activation.clone().requires_grad_()

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


def test_fused_block_runs_its_children_in_order_when_a_child_has_a_hook() -> None:
    block = FusedConvBlock(conv_block(8, 16, dropout=0.025), native=HAS_KERNELS).train()
    seen = []
    block[2].register_forward_hook(lambda module, args, output: seen.append(output.shape))
    block(torch.randn(4, 8, 12, 12).contiguous(memory_format=torch.channels_last))
    assert seen == [torch.Size([4, 16, 10, 10])]


def test_only_blocks_of_the_fusable_pattern_are_swapped() -> None:
    assert fused.is_conv_block(conv_block(8, 8, 0.05))
    assert not fused.is_conv_block(conv_block(8, 8, 0.5))  # a large rate: the dense draw is cheaper
    assert not fused.is_conv_block(nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.05)))
    assert fused.is_plain_2x2_pool(nn.MaxPool2d(2)) and not fused.is_plain_2x2_pool(nn.MaxPool2d(3))


def test_c_kernels_are_built_wherever_linux_has_a_c_compiler() -> None:
    if platform.system() != "Linux" or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here: training uses PyTorch ops")
    assert HAS_KERNELS
    assert ops.tileable(torch.zeros(2, 10, 4, 4).contiguous(memory_format=torch.channels_last))


def test_c_kernels_can_be_switched_off_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(native.SWITCH, "0")
    native.library.cache_clear()
    try:
        assert native.library() is None and acceleration.resolve("auto", "cpu") == "torch"
        with pytest.raises(acceleration.AccelerationError, match="use --backend torch"):
            acceleration.resolve("native", "cpu")
    finally:
        monkeypatch.undo()
        native.library.cache_clear()


def test_kernel_signatures_come_from_the_c_prototypes_and_calls_are_checked() -> None:
    sig = native.signatures(["int f(const float *x, uint8_t *w, int64_t n, int c, double s) {\n}\n"])
    assert sig == {"f": [("float", True), ("uint8_t", True), ("int64_t", False), ("int", False), ("double", False)]}
    with pytest.raises(ValueError, match="cannot pass"):
        native.signatures(["int g(struct thing *t) {\n}\n"])
    if not HAS_KERNELS:
        pytest.skip("the C kernels are not available here")
    lib = native.library()
    assert set(lib.signature) >= {"rbd_forward", "rbd_backward", "mp_forward", "mp_backward"}
    x = torch.zeros(1, 2, 2, 2, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    out, which = torch.empty(1, 2, 1, 1), torch.empty(1, 2, 1, 1, dtype=torch.uint8)
    with pytest.raises(TypeError, match="argument 0 must be a dense CPU torch.float32"):
        lib.call("mp_forward", x, out, which, 1, 2, 2, 2)  # float64 where the C code reads floats
    with pytest.raises(TypeError, match="takes 7 arguments"):
        lib.call("mp_forward", x, out)


def test_ops_reject_what_the_kernels_cannot_read() -> None:
    if not HAS_KERNELS:
        pytest.skip("the C kernels are not available here")
    with pytest.raises(ValueError, match="channels-last float32"):
        ops.max_pool2x2(torch.zeros(1, 2, 4, 4))  # default layout
    odd = torch.randn(3, 10, 5, 5).contiguous(memory_format=torch.channels_last)  # 75 pixels x 10: no whole tiles
    assert not ops.tileable(odd)
    with pytest.raises(ValueError, match="at most 16"):
        ops.pointwise_pool(torch.zeros(1, 32, 4, 4).contiguous(memory_format=torch.channels_last),
                           torch.zeros(10, 32, 1, 1))


def test_activations_the_kernel_cannot_tile_train_through_torch_ops() -> None:
    block = FusedConvBlock(conv_block(10, 10, dropout=0.05), native=True).train()
    block[0] = nn.Identity()
    x = torch.randn(3, 10, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    block(x).sum().backward()
    assert torch.isfinite(x.grad).all() and block[2].num_batches_tracked.item() == 1


def test_ops_are_registered_with_torch_library_and_have_fake_kernels() -> None:
    if not HAS_KERNELS:
        pytest.skip("the C kernels are not available here")
    from torch._subclasses.fake_tensor import FakeTensorMode

    for name in ("relu_bn_drop", "max_pool2x2", "pointwise_pool"):
        assert hasattr(torch.ops.mnist_zoo, name) and hasattr(torch.ops.mnist_zoo, f"{name}_backward")
    with FakeTensorMode():
        x = torch.empty(4, 16, 8, 8).contiguous(memory_format=torch.channels_last)
        out, which = torch.ops.mnist_zoo.max_pool2x2(x)
        assert out.shape == (4, 16, 4, 4) and which.dtype == torch.uint8
        out, which = torch.ops.mnist_zoo.pointwise_pool(x, torch.empty(10, 16, 1, 1))
        assert out.shape == (4, 10, 4, 4) and which.dtype == torch.uint8


def _pool_both(x: torch.Tensor, grad_shape=None) -> tuple:
    ours, stock = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_stock = FusedMaxPool2d(2)(ours), nn.MaxPool2d(2)(stock)
    grad = torch.randn_like(out_stock) if grad_shape is None else torch.full(grad_shape, -0.0).contiguous(
        memory_format=torch.channels_last)
    out.backward(grad)
    out_stock.backward(grad)
    return out, out_stock, ours.grad, stock.grad


def test_fused_max_pool_matches_the_stock_one_including_ties_and_nan() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 10, 24, 24)
    x[0, :, :2, :2] = 1.5  # four equal values: the first wins in both
    x[0, :, 2, 3] = x[0, :, 3, 2] = 9.0  # two equal winners, top-right and bottom-left
    x[1, 3, 4, 5] = float("nan")  # a NaN wins its window in both
    x[2, 1, 6:8, 6:8] = float("nan")  # a window of NaNs
    x = x.contiguous(memory_format=torch.channels_last)
    if HAS_KERNELS:
        assert ops.poolable(x)
    out, out_stock, grad, grad_stock = _pool_both(x)
    assert torch.equal(out.isnan(), out_stock.isnan()) and out.isnan().any()
    assert torch.equal(out.nan_to_num(), out_stock.nan_to_num())
    assert torch.equal(grad, grad_stock)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("shape", [(2, 10, 7, 7), (2, 10, 5, 4), (3, 7, 6, 10)])
def test_fused_max_pool_odd_sizes_channels_and_tails_match_the_stock_one(shape) -> None:
    torch.manual_seed(1)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    out, out_stock, grad, grad_stock = _pool_both(x)
    assert torch.equal(out, out_stock) and torch.equal(grad, grad_stock)


def test_fused_max_pool_backward_matches_the_stock_one_bit_for_bit_on_signed_zeros() -> None:
    x = torch.randn(2, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    *_, grad, grad_stock = _pool_both(x, grad_shape=(2, 16, 2, 2))
    assert torch.equal(grad.signbit(), grad_stock.signbit())


def test_drop_positions_are_distinct_and_in_range() -> None:
    torch.manual_seed(1)
    positions = drop_positions(100_000, 0.05)
    assert len(positions.unique()) == len(positions)
    assert positions.min() >= 0 and positions.max() < 100_000
    assert abs(len(positions) / 100_000 - 0.05) < 0.005


def test_drop_gaps_follow_the_geometric_distribution() -> None:
    torch.manual_seed(2)
    p, n = 0.025, 4_000_000
    gaps = drop_positions(n, p).diff().double()  # ~100k gaps between consecutive drops
    assert abs(gaps.mean().item() - 1 / p) < 0.5  # 1/p = 40; the mean's standard error is ~0.12
    assert abs(gaps.var().item() / ((1 - p) / p**2) - 1) < 0.03
    assert gaps.min().item() >= 1
    assert abs((gaps == 1).double().mean().item() - p) < 0.003  # P(gap = 1) = p


def _pointwise_pool_both(x: torch.Tensor, weight: torch.Tensor) -> tuple:
    """(output, input gradient, weight gradient) of PointwiseConvPool and of the stock conv -> pool."""
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight)
    stock = nn.Sequential(conv, nn.MaxPool2d(2))
    ours = PointwiseConvPool(copy.deepcopy(conv))
    results = []
    for module in (ours, stock):
        xi = x.clone().requires_grad_()
        out = module(xi)
        out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
        results.append((out, xi.grad, module.weight.grad if module is ours else conv.weight.grad))
    return results


@pytest.mark.parametrize("channels,outputs,size", [(16, 10, 24), (3, 5, 6), (16, 16, 2), (8, 1, 8), (16, 10, 7),
                                                   (32, 10, 4)])
def test_pointwise_conv_pool_trains_like_the_convolution_then_the_pool(channels: int, outputs: int, size: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, channels, size, size).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(outputs, channels, 1, 1)
    if HAS_KERNELS:  # odd sizes and more than 16 channels take the stock path
        assert ops.pointwise_poolable(x, weight) == (size % 2 == 0 and channels <= 16)
    (out, dx, dw), (out_stock, dx_stock, dw_stock) = _pointwise_pool_both(x, weight)
    torch.testing.assert_close(out, out_stock, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx, dx_stock, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw, dw_stock, rtol=1e-4, atol=1e-4)
    assert dx.is_contiguous(memory_format=torch.channels_last) and dw.shape == (outputs, channels, 1, 1)


def test_pointwise_conv_pool_keeps_max_pools_rule_on_ties_and_nan() -> None:
    x = torch.randn(2, 10, 8, 8)
    x[0, :, :2, :2] = 1.5  # a window of equal values: the first wins
    x[1, :, 2, 3] = x[1, :, 3, 2] = 9.0  # two equal winners
    x[1, :, 4, 5] = float("nan")  # a NaN pixel wins its window in every channel
    x = x.contiguous(memory_format=torch.channels_last)
    (out, dx, _), (out_stock, dx_stock, _) = _pointwise_pool_both(x, torch.eye(10).view(10, 10, 1, 1))
    assert torch.equal(out.isnan(), out_stock.isnan()) and out.isnan().any()
    assert torch.equal(out.nan_to_num(), out_stock.nan_to_num())
    assert torch.equal(dx.nan_to_num(), dx_stock.nan_to_num())


def _relu_bn_drop_args(x: torch.Tensor) -> tuple:
    c = x.shape[1]
    return (x, torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True), torch.zeros(c), torch.ones(c),
            0.1, 1e-5, 1 / 0.95, torch.tensor([3, 40, 41], dtype=torch.int64))


@pytest.mark.parametrize("name", ["relu_bn_drop", "max_pool2x2", "pointwise_pool", "relu_bn_drop_pointwise_pool"])
def test_eager_run_computes_what_the_registered_op_does_bit_for_bit(name: str) -> None:
    if not HAS_KERNELS:
        pytest.skip("the C kernels are not available here")
    torch.manual_seed(0)
    x = torch.randn(4, 16, 6, 6).contiguous(memory_format=torch.channels_last)
    args = {"relu_bn_drop": _relu_bn_drop_args, "max_pool2x2": lambda x: (x,),
            "pointwise_pool": lambda x: (x, torch.randn(10, 16, 1, 1, requires_grad=True)),
            "relu_bn_drop_pointwise_pool": lambda x: (*_relu_bn_drop_args(x),
                                                      torch.randn(10, 16, 1, 1, requires_grad=True))}[name]
    op, given = getattr(ops, name), args(x)
    results = []
    for call in (lambda *a: op(*a), lambda *a: ops.run(op, *a)):
        inputs = [a.detach().clone().requires_grad_(a.requires_grad or i == 0) if isinstance(a, torch.Tensor) else a
                  for i, a in enumerate(given)]
        out = call(*inputs)[0]
        out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
        results.append([out] + [a.grad for a in inputs if isinstance(a, torch.Tensor) and a.requires_grad])
    for ours, registered in zip(*results):
        assert torch.equal(ours, registered)


def _stem_pair() -> tuple[nn.Module, nn.Module]:
    """V1-V3's stem accelerated (block -> 1x1 conv -> pool fused) and the same children run one by one."""
    torch.manual_seed(0)
    fast, _ = acceleration.accelerate(nn.Sequential(conv_block(1, 8, 0.05), conv_block(8, 16, 0.05),
                                                    nn.Conv2d(16, 10, 1, bias=False), nn.MaxPool2d(2)), "native")
    with torch.no_grad():
        for bn in (fast[0][2], fast[1][2]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return fast, nn.Sequential(*copy.deepcopy(list(fast)))


def _train_once(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict, dict]:
    torch.manual_seed(5)  # the same dropped positions for both
    x = x.clone().requires_grad_()
    out = model.train()(x)
    out.backward(torch.linspace(-1, 1, out.numel()).view(out.shape))
    grads = {name: p.grad for name, p in model.named_parameters()} | {"input": x.grad}
    return out, grads, model.state_dict()


@pytest.mark.skipif(not HAS_KERNELS, reason="the C kernels are not available here")
@pytest.mark.parametrize("hook", [False, True])
def test_a_block_fused_with_the_pointwise_pool_trains_like_the_layers_in_turn(hook: bool) -> None:
    fast, slow = _stem_pair()
    assert type(fast) is FusedSequential and type(slow) is nn.Sequential and list(fast.state_dict()) == list(slow.state_dict())
    seen = []
    if hook:  # a hook on the 1x1 conv must see the block's output: the pair then runs unfused
        fast[2].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    x = torch.randn(6, 1, 26, 26).contiguous(memory_format=torch.channels_last)
    (out, grads, state), (out_slow, grads_slow, state_slow) = _train_once(fast, x), _train_once(slow, x)
    assert torch.equal(out, out_slow)
    for name, expected in grads_slow.items():  # sums over the batch, in another order: rounding relative to the largest
        torch.testing.assert_close(grads[name], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()), msg=name)
    for name in state_slow:
        assert torch.equal(state[name], state_slow[name]), name
    assert seen == ([torch.Size([6, 16, 22, 22])] if hook else [])
    torch.testing.assert_close(fast.eval()(x), slow.eval()(x))  # evaluation runs the children in turn


@pytest.mark.skipif(not HAS_KERNELS, reason="the C kernels are not available here")
def test_the_fused_block_kernel_refuses_what_it_cannot_take() -> None:
    x = torch.randn(2, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(10, 16, 1, 1)
    args = _relu_bn_drop_args(x)
    with pytest.raises(RuntimeError, match="dropped position"):
        ops.relu_bn_drop_pointwise_pool(*args[:-1], torch.tensor([x.numel()]), weight)
    with pytest.raises(ValueError, match="at most 16"):
        ops.relu_bn_drop_pointwise_pool(*args, torch.randn(10, 16, 1, 1)[:, :8].contiguous())
    out, which, bits, a, b, mean, invstd, *_ = ops.relu_bn_drop_pointwise_pool(*args, weight)
    with pytest.raises(ValueError, match="winners of shape"):
        ops.relu_bn_drop_pointwise_pool_backward(out[:1], which, bits, x, weight, a, b, args[1], 1.0, mean, invstd)
