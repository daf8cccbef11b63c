"""What people read and load after a run: the torchsummary text, the training plot, saved files.

``load_model_params`` and ``load_metrics_json`` keep the original project's names and signatures.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here or on servers
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from artifacts import ArtifactPaths, atomic_write_bytes, atomic_write_text  # noqa: E402

INPUT_SIZE = (1, 28, 28)


def summary_text(model: nn.Module) -> str:
    """torchsummary's table for a (1, 28, 28) input on the CPU, as text."""
    from torchsummary import summary

    model = model.to("cpu")
    was_training = model.training
    model.eval()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), torch.no_grad():
        summary(model, INPUT_SIZE, device="cpu")
    model.train(was_training)
    return buffer.getvalue()


def save_summary(model: nn.Module, path: Path, title: str) -> Path:
    """Write the summary of a (CPU) copy of ``model`` with a title line; returns the path."""
    import copy

    atomic_write_text(path, f"{title}\n\n{summary_text(copy.deepcopy(model))}")
    return path


def save_training_plot(history: dict, path: Path, title: str) -> Path:
    """Four panels: train loss per batch, test loss per epoch, train and test accuracy per epoch."""
    epochs = [e["epoch"] for e in history["epochs"]]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        (axes[0, 0], "Training loss (per batch)", "batch", None, history["batch_train_loss"]),
        (axes[0, 1], "Test loss (per epoch)", "epoch", epochs, [e["test_loss"] for e in history["epochs"]]),
        (axes[1, 0], "Training accuracy (%)", "epoch", epochs, [e["train_acc"] for e in history["epochs"]]),
        (axes[1, 1], "Test accuracy (%)", "epoch", epochs, [e["test_acc"] for e in history["epochs"]]),
    ]
    for ax, name, xlabel, xs, ys in panels:
        if xs is None:
            ax.plot(ys, linewidth=0.6)
        else:
            ax.plot(xs, ys, marker="o")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if any(e.get("val_acc") is not None for e in history["epochs"]):
        axes[1, 1].plot(epochs, [e["val_acc"] for e in history["epochs"]], marker="s", label="validation")
        axes[1, 1].plot([], [], marker="o", label="test")
        axes[1, 1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _key_of(stem: str) -> str:
    return stem.removeprefix("mnist_model_")


def load_model_params(model: nn.Module, stem: str, out_dir: Path | str | None = None) -> nn.Module:
    """Load ``outputs/<stem>_params.pth`` into ``model``; a file for another model raises an error naming both."""
    from model_strategy import identify_state_dict, load_weights

    expected = identify_state_dict(model.state_dict()) or _key_of(stem)
    return load_weights(model, ArtifactPaths(stem, out_dir).params, expected)


def load_metrics_json(stem: str, out_dir: Path | str | None = None) -> dict:
    """The metrics record (config, history, summary) of ``outputs/<stem>_metrics.json``."""
    return json.loads(ArtifactPaths(stem, out_dir).metrics.read_text())
