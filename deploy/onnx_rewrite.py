"""Rewrites of an ONNX graph that keep its function and shrink the file: batch-norm folding and compaction.

The tiny nets run ReLU -> BatchNorm -> next layer, so the exporter leaves every batch norm in the graph,
and the int8 quantizer then wraps each one in dequantize / quantize nodes with float parameters. Both
rewrites here are exact up to float rounding (the export's parity check on the test set still decides):

- A batch norm y = s * x + t whose only consumer is an unpadded convolution or a linear layer (possibly
  through average pooling and flattening, which commute with a per-channel affine map) is folded
  *forward*: the next layer's weights are scaled by s per input channel and its bias absorbs W @ t.
- One that feeds a padded convolution cannot fold forward (the zeros padded in would no longer be
  zeros), but after ReLU with every s > 0 it folds *backward*: relu(z) * s = relu(s * z), so s moves
  into the producing convolution and only the shift t stays, as an Add.

``compact`` then drops what the file does not need to run: exporter metadata, cached shapes, node
names, attributes that equal their ONNX defaults, unused opset imports and duplicate initializers, and
gives every internal tensor a short name (the graph's input and output keep theirs).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Ops between a folded batch norm and the layer that absorbs it: per-channel affine maps pass through.
_PASS_THROUGH = {"AveragePool", "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape"}
# Attribute values that ONNX assumes when the attribute is absent, for the convolution and pooling ops.
_WINDOW_OPS = {"Conv", "ConvInteger", "ConvTranspose", "QLinearConv", "MaxPool", "AveragePool", "LpPool",
               "QLinearAveragePool"}
_SCALAR_DEFAULTS = {"auto_pad": b"NOTSET", "group": 1, "ceil_mode": 0, "storage_order": 0, "count_include_pad": 0}
_LIST_DEFAULTS = {"dilations": 1, "strides": 1, "pads": 0}


def _attr(node: onnx.NodeProto, name: str, default=None):  # noqa: ANN001, ANN202 - any attribute type
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class _Graph:
    """Initializers by name and consumers of each value, for rewrites that edit the graph in place."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.inits = {t.name: t for t in graph.initializer}
        self.outputs = {v.name for v in graph.output}

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name]).astype(np.float64)

    def put(self, name: str, value: np.ndarray) -> None:
        tensor = numpy_helper.from_array(value.astype(np.float32), name)
        if name in self.inits:
            self.inits[name].CopyFrom(tensor)
        else:
            self.graph.initializer.append(tensor)
            self.inits[name] = self.graph.initializer[-1]

    def consumers(self, value: str) -> list[onnx.NodeProto]:
        return [n for n in self.graph.node if value in n.input]

    def producer(self, value: str) -> onnx.NodeProto | None:
        return next((n for n in self.graph.node if value in n.output), None)

    def sole_consumer(self, value: str) -> onnx.NodeProto | None:
        users = self.consumers(value)
        return users[0] if len(users) == 1 and value not in self.outputs else None

    def private_constant(self, name: str) -> bool:
        """A constant that only one node reads, so that rewriting it changes nothing else."""
        return name in self.inits and len(self.consumers(name)) == 1

    def affine(self, bn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
        """(s, t) with bn(x) = s * x + t per channel, or None when its parameters are not constants."""
        if any(name not in self.inits for name in bn.input[1:5]):
            return None
        gamma, beta, mean, var = (self.array(name) for name in bn.input[1:5])
        scale = gamma / np.sqrt(var + _attr(bn, "epsilon", 1e-5))
        return scale, beta - mean * scale

    def bypass(self, node: onnx.NodeProto, replacement: str) -> None:
        """Remove ``node`` (one output), feeding ``replacement`` to its consumers."""
        for other in self.graph.node:
            for i, value in enumerate(other.input):
                if value == node.output[0]:
                    other.input[i] = replacement
        self.graph.node.remove(node)


def _absorber(g: _Graph, value: str) -> onnx.NodeProto | None:
    """The convolution or linear layer that a per-channel affine map on ``value`` can fold into exactly."""
    node, pooled = g.sole_consumer(value), False
    while node is not None and node.op_type in _PASS_THROUGH and node.input[0] == value:
        if any(_attr(node, "pads", [0])) or (node.op_type in ("Flatten", "Reshape") and not pooled):
            return None  # flattening keeps channel c at position c only after pooling to 1x1
        if node.op_type == "ReduceMean":  # must not average over channels (axis 1)
            axes = numpy_helper.to_array(g.inits[node.input[1]]) if len(node.input) > 1 and node.input[1] in g.inits \
                else _attr(node, "axes")
            if axes is None or any(int(a) % 4 == 1 for a in axes):
                return None
        pooled = pooled or node.op_type not in ("Flatten", "Reshape")
        value = node.output[0]
        node = g.sole_consumer(value)
    if node is None or node.input[0] != value or not g.private_constant(node.input[1]):
        return None
    if node.op_type == "Conv" and not any(_attr(node, "pads", [0])) and _attr(node, "group", 1) == 1 \
            and _attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", b"VALID"):
        return node
    if node.op_type == "Gemm" and _attr(node, "transB", 0) == 1 and not _attr(node, "transA", 0) \
            and _attr(node, "alpha", 1.0) == 1.0 and _attr(node, "beta", 1.0) == 1.0:
        return node
    return None


def _fold_forward(g: _Graph, bn: onnx.NodeProto, scale: np.ndarray, shift: np.ndarray) -> bool:
    layer = _absorber(g, bn.output[0])
    if layer is None:
        return False
    weight = g.array(layer.input[1])  # Conv (O, C, kh, kw) or Gemm with transB (O, C)
    has_bias = len(layer.input) > 2 and layer.input[2] != ""
    if weight.shape[1] != len(scale) or (has_bias and not g.private_constant(layer.input[2])):
        return False
    bias = g.array(layer.input[2]) if has_bias else np.zeros(weight.shape[0])
    per_channel = scale.reshape((1, -1) + (1,) * (weight.ndim - 2))
    g.put(layer.input[1], weight * per_channel)
    bias_name = layer.input[2] if has_bias else f"{layer.input[1]}_folded_bias"
    g.put(bias_name, bias + weight.reshape(weight.shape[0], weight.shape[1], -1).sum(axis=2) @ shift)
    if len(layer.input) < 3:
        layer.input.append(bias_name)
    else:
        layer.input[2] = bias_name
    g.bypass(bn, bn.input[0])
    return True


def _fold_backward(g: _Graph, bn: onnx.NodeProto, scale: np.ndarray, shift: np.ndarray) -> bool:
    relu = g.producer(bn.input[0])
    if relu is None or relu.op_type != "Relu" or g.sole_consumer(bn.input[0]) is not bn or not (scale > 0).all():
        return False
    conv = g.producer(relu.input[0])
    if conv is None or conv.op_type != "Conv" or g.sole_consumer(relu.input[0]) is not relu \
            or not all(g.private_constant(name) for name in conv.input[1:] if name):
        return False
    g.put(conv.input[1], g.array(conv.input[1]) * scale.reshape(-1, 1, 1, 1))
    if len(conv.input) > 2 and conv.input[2]:
        g.put(conv.input[2], g.array(conv.input[2]) * scale)
    shift_name = f"{bn.output[0]}_shift"
    g.put(shift_name, shift.reshape(-1, 1, 1))
    nodes = g.graph.node
    nodes.insert(list(nodes).index(bn), helper.make_node("Add", [bn.input[0], shift_name], [bn.output[0]]))
    nodes.remove(bn)
    return True


def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold every constant BatchNormalization that can be folded exactly (see the module docstring)."""
    g = _Graph(model.graph)
    for bn in [n for n in model.graph.node if n.op_type == "BatchNormalization" and len(n.output) == 1]:
        affine = g.affine(bn)
        if affine is not None and not _fold_forward(g, bn, *affine):
            _fold_backward(g, bn, *affine)
    used = {value for node in model.graph.node for value in node.input}
    for tensor in [t for t in model.graph.initializer if t.name not in used]:
        model.graph.initializer.remove(tensor)
    return model


def compact(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph without what running it does not need, its internal tensors given short names."""
    graph = model.graph
    del model.metadata_props[:], graph.metadata_props[:], graph.value_info[:]
    model.doc_string = graph.doc_string = ""
    for node in graph.node:
        node.name = node.doc_string = ""
        for a in list(node.attribute) if node.op_type in _WINDOW_OPS else []:
            value = helper.get_attribute_value(a)
            if (a.name in _SCALAR_DEFAULTS and value == _SCALAR_DEFAULTS[a.name]) \
                    or (a.name in _LIST_DEFAULTS and all(v == _LIST_DEFAULTS[a.name] for v in value)):
                node.attribute.remove(a)
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return model  # subgraphs may name outer values: leave every name as it is
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | {""}
    first: dict[tuple, str] = {}
    duplicate_of: dict[str, str] = {}
    for tensor in [t for t in graph.initializer if t.name not in keep]:
        key = (tensor.data_type, tuple(tensor.dims), numpy_helper.to_array(tensor).tobytes())
        if key in first:
            duplicate_of[tensor.name] = first[key]
            graph.initializer.remove(tensor)
        else:
            first[key] = tensor.name
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        name = duplicate_of.get(name, name)
        if name in keep:
            return name
        return short.setdefault(name, np.base_repr(len(short), 36).lower())

    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for node in graph.node:
        node.input[:] = [rename(v) for v in node.input]
        node.output[:] = [rename(v) for v in node.output]
    used_domains = {node.domain for node in graph.node} | {"", "ai.onnx"}
    for opset in [o for o in model.opset_import if o.domain not in used_domains]:
        model.opset_import.remove(opset)
    return model
