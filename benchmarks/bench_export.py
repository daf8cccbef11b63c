"""Exports side by side: file size, test accuracy and CPU inference images/s of the float32 PyTorch model,
its ONNX float32 export and its int8 export, for each model, measured in one run.

    .venv/bin/python -m benchmarks.bench_export --data-dir ../shared/data --json-out benchmarks/results/export.json
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import data_utils
import model_strategy
from benchmarks.common import machine
from core.artifacts import atomic_save_json
from data_utils import default_data_dir
from deploy import export


def measure(key: str, splits: dict, tmp: Path) -> dict:
    """One model: PyTorch float32, ONNX float32 and int8, each timed on the test set in turn, repeated."""
    model = model_strategy.load_trained(key)
    reports = {fmt: export.export(model, fmt, tmp / f"{key}_{fmt}.onnx", splits["train"], splits["test"])
               for fmt in export.FORMATS}
    sessions = {fmt: export.session(Path(r.path).read_bytes()) for fmt, r in reports.items()}
    images = splits["test"].images.float() / 255.0
    runners = {"pytorch": lambda chunk: export.torch_logits(model, chunk, len(chunk)),
               "onnx": lambda chunk: export.onnx_logits(sessions["onnx"], chunk, len(chunk)),
               "int8": lambda chunk: export.onnx_logits(sessions["int8"], chunk, len(chunk))}
    speed = {name: 0.0 for name in runners}
    for _ in range(3):  # interleaved rounds, best of each: the machine's drift hits all three alike
        for name, run in runners.items():
            speed[name] = max(speed[name], export.images_per_second(run, images, repeats=1))
    weights = model_strategy.trained_params(key)
    return {"model": key, "params": model_strategy.param_count(model),
            "pytorch": {"size_bytes": weights.stat().st_size, "file": weights.name,
                        "test_acc": reports["onnx"].torch_test_acc, "images_per_s": round(speed["pytorch"])},
            **{fmt: {"size_bytes": r.size_bytes, "test_acc": r.export_test_acc, "same_prediction": r.same_prediction,
                     "max_logit_diff": r.max_logit_diff, "images_per_s": round(speed[fmt])} for fmt, r in reports.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(model_strategy.available_models()))
    p.add_argument("--data-dir", default=str(default_data_dir()))
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json-out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    splits = data_utils.load_mnist(args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in model_strategy.keys(args.models):
            rows.append(measure(key, splits, Path(tmp)))
            r = rows[-1]
            print(f"{key}: " + "; ".join(f"{f} {r[f]['size_bytes']:,} B, {r[f]['test_acc']:.2f}%, {r[f]['images_per_s']:,} img/s"
                                          for f in ("pytorch", "onnx", "int8")), flush=True)
    record = {"machine": machine(), "threads": args.threads, "batch_size": 256, "models": rows}
    if args.json_out:
        atomic_save_json(args.json_out, record)
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
