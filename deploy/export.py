"""Take a trained model elsewhere: ONNX (float32, dynamic batch size) and a statically quantized int8 ONNX.

Every export is checked before it is trusted: onnxruntime runs it on the whole MNIST test set and its
predictions are compared with PyTorch's (float32: the same digit for every image and logits within
``LOGIT_TOLERANCE``; int8: its accuracy is reported next to float32's). int8 is calibrated on training
images only, never on the test set; weights are quantized per output channel, activations per tensor,
into ONNX's quantized operators (QLinearConv, QLinearMatMul, ...). Before either is written, batch norms
are folded into neighbouring layers where that is exact and the file is compacted (``onnx_rewrite``): it
holds the graph and the weights, not the exporter's metadata.
"""
from __future__ import annotations

import importlib
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from core.artifacts import atomic_write_bytes
from data_utils import MNISTTensors, normalize

LOGIT_TOLERANCE = 1e-3  # largest |logit difference| allowed between PyTorch and ONNX float32
CALIBRATION_IMAGES = 2048  # training images that set int8's activation ranges
PACKAGES = ("onnx", "onnxscript", "onnxruntime")
FORMATS = ("onnx", "int8")


class ExportError(Exception):
    """An export that cannot be made or that does not match PyTorch; the message says which and why."""


@dataclass
class ExportReport:
    format: str
    path: str
    size_bytes: int
    torch_test_acc: float
    export_test_acc: float
    same_prediction: float  # fraction of test images where the export predicts PyTorch's digit
    max_logit_diff: float

    def to_dict(self) -> dict:
        return asdict(self)


def require_packages() -> None:
    """Raise ``ExportError`` naming the export packages that are not installed."""
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"export needs {', '.join(missing)}: .venv/bin/pip install -r requirements.txt")


def onnx_bytes(model: nn.Module) -> bytes:
    """The eval-mode model as an ONNX file whose batch dimension is free (torch.export, opset of the exporter)."""
    model = model.cpu().eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            program = torch.onnx.export(model, (torch.zeros(2, 1, 28, 28),), dynamo=True, input_names=["image"],
                                        output_names=["logits"], dynamic_shapes=({0: batch},), external_data=False,
                                        verbose=False)
            program.save(str(path))
            return _lean(path.read_bytes(), fold=True)
    except Exception as exc:  # the exporter raises many kinds; one line says which and why
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")\
            from None


def _lean(onnx_file: bytes, fold: bool = False) -> bytes:
    """The model without the exporter's metadata (source stack traces), cached shapes and long names, its
    batch norms folded when ``fold``: the graph and weights only, under half the file for a tiny net."""
    import onnx  # noqa: PLC0415 - optional until an export is asked for

    from deploy import onnx_rewrite  # noqa: PLC0415 - needs onnx

    model = onnx.load_from_string(onnx_file)
    for node in model.graph.node:
        del node.metadata_props[:]
    if fold:
        onnx_rewrite.fold_batchnorm(model)
    return onnx_rewrite.compact(model).SerializeToString()


def int8_bytes(float_onnx: bytes, calibration: Tensor) -> bytes:
    """A statically quantized copy of a float ONNX model, calibrated on ``calibration`` (N, 28, 28) in [0, 1]."""
    from onnxruntime import quantization as q  # noqa: PLC0415 - optional until an int8 export is asked for

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": normalize(chunk).numpy()} for chunk in calibration.split(256)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, target = (Path(tmp) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(float_onnx)
        logging.disable(logging.WARNING)  # onnxruntime notes every 1-D weight it leaves per-tensor
        try:
            q.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            q.quantize_static(str(prepared), str(target), Reader(), quant_format=q.QuantFormat.QOperator, per_channel=True,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              calibrate_method=q.CalibrationMethod.MinMax)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"int8 quantization failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")\
                from None
        finally:
            logging.disable(logging.NOTSET)
        return _lean(target.read_bytes())


def session(onnx: bytes):  # noqa: ANN201 - onnxruntime.InferenceSession, imported lazily
    import onnxruntime  # noqa: PLC0415

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])


def onnx_logits(onnx_session, images: Tensor, batch_size: int = 1000) -> Tensor:  # noqa: ANN001
    """Logits of (N, 28, 28) images in [0, 1] from an onnxruntime session."""
    outs = [onnx_session.run(None, {"image": normalize(chunk).numpy()})[0] for chunk in images.split(batch_size)]
    return torch.cat([torch.from_numpy(o) for o in outs])


def torch_logits(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    model = model.cpu().eval()
    with torch.inference_mode():
        return torch.cat([model(normalize(chunk)) for chunk in images.split(batch_size)])


def export(model: nn.Module, fmt: str, path: Path, train: MNISTTensors, test: MNISTTensors) -> ExportReport:
    """Write ``model`` as ``fmt`` (``onnx`` or ``int8``) to ``path`` after checking it on the test set."""
    require_packages()
    images = test.images.float() / 255.0
    reference = torch_logits(model, images)
    float_onnx = onnx_bytes(model)
    if fmt == "int8":
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:CALIBRATION_IMAGES]
        data = int8_bytes(float_onnx, train.images[pick].float() / 255.0)
    else:
        data = float_onnx
    logits = onnx_logits(session(data), images)
    agree = float((logits.argmax(1) == reference.argmax(1)).float().mean())
    diff = float((logits - reference).abs().max())
    if fmt == "onnx" and (agree < 1.0 or diff > LOGIT_TOLERANCE):
        raise ExportError(f"the ONNX model does not match PyTorch: same digit on {100 * agree:.2f}% of the test set,"
                          f" logits differ by up to {diff:.2g} (tolerance {LOGIT_TOLERANCE:g}); nothing written")
    atomic_write_bytes(path, data)
    return ExportReport(fmt, str(path), len(data), _accuracy(reference, test.labels), _accuracy(logits, test.labels),
                        agree, diff)


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    return round(100.0 * float((logits.argmax(1) == labels).float().mean()), 2)


def images_per_second(run, images: Tensor, batch_size: int = 256, repeats: int = 3) -> float:  # noqa: ANN001
    """Best-of-``repeats`` throughput of ``run`` (a function of an (N, 28, 28) batch) over ``images``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for chunk in images.split(batch_size):
            run(chunk)
        best = min(best, time.perf_counter() - start)
    return len(images) / best
