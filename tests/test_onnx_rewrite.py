"""Batch-norm folding and compaction of exported graphs: same outputs, fewer nodes, smaller files."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deploy import export

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from deploy import onnx_rewrite  # noqa: E402 - needs onnx


def _trained_looking(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with running statistics and affine parameters far from their initial values."""
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.rand(c, generator=g))
            module.running_var.copy_(0.2 + torch.rand(c, generator=g))
            module.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            module.bias.data.copy_(torch.randn(c, generator=g))
    return model.eval()


def _net(last_gamma_sign: float = 1.0) -> nn.Module:
    """ReLU -> BN before an unpadded conv, before a padded conv, and before pooling + a linear head."""
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(4),
        nn.Conv2d(4, 6, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(6),
        nn.Conv2d(6, 5, 3, padding=1, bias=False), nn.ReLU(), nn.BatchNorm2d(5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 10))
    net = _trained_looking(net)
    net[5].weight.data[0] *= last_gamma_sign  # the BN before the padded conv
    return net


def _ops(onnx_file: bytes) -> list[str]:
    return [node.op_type for node in onnx.load_from_string(onnx_file).graph.node]


def _max_difference(net: nn.Module, onnx_file: bytes) -> float:
    images = torch.rand(64, 28, 28, generator=torch.Generator().manual_seed(1))
    return float((export.onnx_logits(export.session(onnx_file), images) - export.torch_logits(net, images)).abs().max())


def test_every_batch_norm_after_relu_folds_away_and_the_outputs_stay_the_same() -> None:
    net = _net()
    folded = export.onnx_bytes(net)
    assert "BatchNormalization" not in _ops(folded)
    assert _ops(folded).count("Add") == 1  # the padded conv's BN leaves its shift behind
    assert _max_difference(net, folded) < 1e-4


def test_a_batch_norm_with_a_negative_scale_before_a_padded_conv_is_left_in_place() -> None:
    net = _net(last_gamma_sign=-1.0)
    folded = export.onnx_bytes(net)
    assert _ops(folded).count("BatchNormalization") == 1
    assert _max_difference(net, folded) < 1e-4


def test_folding_skips_a_weight_that_two_layers_share() -> None:
    shared = nn.Conv2d(3, 3, 1, bias=False)
    net = _trained_looking(nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.BatchNorm2d(3), shared, nn.ReLU(), shared,
                                         nn.Flatten(), nn.Linear(3 * 26 * 26, 10)))
    folded = export.onnx_bytes(net)
    assert _max_difference(net, folded) < 1e-4


def test_compaction_keeps_the_interface_merges_equal_constants_and_shrinks_the_file() -> None:
    net = _net()
    model = onnx.load_from_string(export.onnx_bytes(net))
    original = model.SerializeToString()
    twin = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(model.graph.initializer[0]), "a_very_long_duplicate")
    model.graph.initializer.append(twin)
    model.graph.node[0].input[1] = twin.name
    model.graph.node[0].name = "a_long_node_name_the_runtime_does_not_need"
    compacted = onnx_rewrite.compact(model)
    names = {t.name for t in compacted.graph.initializer}
    assert [v.name for v in compacted.graph.input] == ["image"] and [v.name for v in compacted.graph.output] == ["logits"]
    assert len(names) == len(onnx.load_from_string(original).graph.initializer) and max(map(len, names)) <= 2
    assert all(node.name == "" for node in compacted.graph.node)
    assert len(compacted.SerializeToString()) <= len(original)
    assert _max_difference(net, compacted.SerializeToString()) < 1e-4
