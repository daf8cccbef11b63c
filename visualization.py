"""What people read and load after a run: the torchsummary text, the training plot, saved files.

``load_model_params`` and ``load_metrics_json`` keep the original project's names and signatures.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from torch import nn
from torchsummary import summary

from core.artifacts import REFERENCE_ROOT, ArtifactPaths, atomic_write_bytes, atomic_write_text
from data_utils import denormalize
from model_strategy import identify_state_dict, load_weights
from models.anatomy import analyse

if TYPE_CHECKING:
    import matplotlib.figure

INPUT_SIZE = (1, 28, 28)


@functools.cache
def pyplot() -> ModuleType:
    """matplotlib's pyplot drawing off-screen (no display here or on servers), imported when a figure is first
    drawn: a command that draws none (``--predict``, a mistyped flag) starts without it."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def summary_text(model: nn.Module) -> str:
    """torchsummary's table for a (1, 28, 28) input on the CPU, as text."""
    model = model.to("cpu")
    was_training = model.training
    model.eval()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), torch.no_grad():
        summary(model, INPUT_SIZE, device="cpu")
    model.train(was_training)
    return buffer.getvalue()


def summary_file(model: nn.Module, title: str) -> str:
    """The summary text of a (CPU) copy of ``model``: title, torchsummary's table, MACs, weight size, and
    every layer's output size and receptive field."""
    plain = copy.deepcopy(model)
    a = analyse(plain)
    merit = (f"Multiply-accumulates per image (forward): {a.macs:,}; weights: {a.weights_kb:,.1f} KB\n\n"
             f"Output size and receptive field of every layer:\n{a.table()}\n")
    return f"{title}\n\n{summary_text(plain)}\n{merit}"


def save_summary(model: nn.Module, path: Path, title: str) -> Path:
    """Write ``summary_file`` of ``model``; returns the path."""
    atomic_write_text(path, summary_file(model, title))
    return path


def save_training_plot(history: dict, path: Path, title: str) -> Path:
    """Four panels: train loss per batch, test loss per epoch, train and test accuracy per epoch."""
    epochs = [e["epoch"] for e in history["epochs"]]
    fig, axes = pyplot().subplots(2, 2, figsize=(12, 8))
    panels = [
        (axes[0, 0], "Training loss (per batch)", "batch", None, history["batch_train_loss"]),
        (axes[0, 1], "Test loss (per epoch)", "epoch", epochs, [e["test_loss"] for e in history["epochs"]]),
        (axes[1, 0], "Training accuracy (%)", "epoch", epochs, [e["train_acc"] for e in history["epochs"]]),
        (axes[1, 1], "Test accuracy (%)", "epoch", epochs, [e["test_acc"] for e in history["epochs"]]),
    ]
    test_line = None
    for ax, name, xlabel, xs, ys in panels:
        if xs is None:
            ax.plot(ys, linewidth=0.6)
        else:
            [test_line] = ax.plot(xs, ys, marker="o", label="test")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if any(e.get("val_acc") is not None for e in history["epochs"]):
        axes[1, 1].plot(epochs, [e["val_acc"] for e in history["epochs"]], marker="s", label="validation")
        axes[1, 1].legend()  # the legend's "test" is the panel's own test line, in its own colour
    fig.suptitle(title)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.07, top=0.91, hspace=0.3, wspace=0.15)  # fixed: tight_layout draws twice
    return _save_figure(fig, path)


def _save_figure(fig: matplotlib.figure.Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def save_confusion_plot(confusion: list[list[int]], path: Path, title: str) -> Path:
    """Annotated heatmap; rows are true digits, columns predicted ones."""
    fig, ax = pyplot().subplots(figsize=(8, 7))
    image = ax.imshow(confusion, cmap="Blues", norm="log", vmin=1,
                      vmax=max(map(max, confusion)) or 1)
    for i, row in enumerate(confusion):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                    color="white" if i == j else ("black" if n else "#bbbbbb"))
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    fig.colorbar(image, ax=ax, label="images (log scale)")
    ax.set_title(title)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.07, top=0.95)  # what tight_layout chose, without its extra draw
    return _save_figure(fig, path)


def save_reliability_plot(sets: list[dict], path: Path, title: str) -> Path:
    """Reliability diagrams, one per set: accuracy against confidence per bin, before and after the temperature,
    the diagonal where a confidence means what it says (``analysis.calibration``'s records)."""
    fig, axes = pyplot().subplots(1, len(sets), figsize=(4.2 * len(sets), 4.4), squeeze=False)
    for ax, s in zip(axes[0], sets):
        ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--")
        for when, colour in (("before", "#d1495b"), ("after", "#2e86ab")):
            r = s[when]
            points = [(c, a) for c, a, n in zip(r["confidence"], r["accuracy"], r["counts"]) if n]
            ax.plot(*zip(*points), marker="o", ms=4, color=colour, label=f"{when}: ECE {r['ece']:.2f}%")
        ax.set_title(f"{s['before']['name']} ({s['before']['digits']:,})", fontsize=9)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)


SWEEP_SCALE = 5.0  # points below the best trial's mean beyond which a sweep figure names a trial instead of plotting it


def save_sweep_plot(found: dict, path: Path) -> Path:
    """A sweep's validation accuracy against each setting it varied: every seed a dot, each trial's mean a bar
    with its spread (``training.sweep.results``); a variants sweep is one panel, its variants along the axis."""
    trials = found["trials"]
    if found["sampler"] == "variants":
        panels = {"variant": [(t["id"], t) for t in trials]}
    else:
        keys = list(dict.fromkeys(k for t in trials for k in t["settings"]))
        panels = {k: [(str(t["settings"].get(k)), t) for t in trials] for k in keys}
    fig, axes = pyplot().subplots(1, max(len(panels), 1), figsize=(max(4.5, 0.9 * max((len(v) for v in panels.values()),
                                  default=1)) * max(len(panels), 1) ** 0.8, 4.2), squeeze=False)
    best = max((t["mean"] for t in trials), default=0.0)
    shown = [a for t in trials if t["mean"] >= best - SWEEP_SCALE for a in t["val_acc"]] or [best]
    low, high = min(shown), max(shown)
    margin = max(0.05, 0.1 * (high - low))
    for ax, (key, points) in zip(axes[0], panels.items()):
        labels = list(dict.fromkeys(label for label, _ in points))
        for x, label in enumerate(labels):
            accs = [a for lab, t in points if lab == label for a in t["val_acc"]]
            mean = sum(accs) / len(accs)
            if mean < best - SWEEP_SCALE:  # far below the rest: named at the bottom, so the others keep their scale
                ax.annotate(f"{mean:.1f}%\n(off scale)", (x, low - margin), ha="center", va="bottom", fontsize=8,
                            color="#d1495b")
                continue
            ax.scatter([x] * len(accs), accs, s=14, color="#2e86ab", alpha=0.6, zorder=3)
            spread = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else 0.0
            ax.errorbar([x + 0.15], [mean], yerr=[spread], fmt="o", color="#d1495b", capsize=4, zorder=4)
        ax.set_ylim(low - margin, high + margin)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4
                      else "center", fontsize=8)
        ax.set_xlabel(key.replace("_", " "))
        ax.set_ylabel("final validation accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"sweep {found['sweep']}: model {found['model']}, {len(found['seeds'])} seed(s) per trial"
                 " (dots: seeds; red: mean ± std)", fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)


def _tile_grid(fig: matplotlib.figure.Figure, cells: list[tuple[list[tuple[object, dict]], str]], cols: int,
               tile: tuple[int, int], fontsize: float, top: float) -> None:
    """Labelled images in rows of ``cols`` on one invisible axes below ``top`` (a fraction of the figure): each cell
    is its layers (an array and its ``imshow`` keywords, drawn in order) and the label over it. One axes, not one
    per image, because laying out and drawing dozens of axes is what made the figures slow to write."""
    height, width = tile
    pitch_x, pitch_y = width * 1.3, height * 1.45  # each cell in image pixels: a gap beside, the label above
    rows = max(1, -(-len(cells) // cols))  # no cells (a run without mistakes): one empty row
    ax = fig.add_axes((0.01, 0.01, 0.98, top - 0.01))
    for index, (layers, label) in enumerate(cells):
        x, y = (index % cols) * pitch_x, (index // cols) * pitch_y + (pitch_y - height)
        for array, options in layers:
            ax.imshow(array, extent=(x, x + width, y + height, y), interpolation="nearest", **options)
        if label:
            ax.text(x + width / 2, y - 0.03 * height, label, ha="center", va="bottom", fontsize=fontsize)
    ax.set_xlim(-(pitch_x - width) / 2, cols * pitch_x - (pitch_x - width) / 2)
    ax.set_ylim(rows * pitch_y + 0.1 * height, 0)  # a little paper under the last row
    ax.set_aspect("equal")
    ax.axis("off")


def save_mistakes_plot(mistakes: list, path: Path, title: str, saliencies: list[torch.Tensor] = ()) -> Path:
    """The most confident mistakes in a 5x5 grid, each with its true label, prediction and confidence; with
    ``saliencies``, a sixth row shows where the model looked for the first five (|input gradient|)."""
    shown = mistakes[:25]
    rows = -(-len(shown) // 5) + (1 if len(saliencies) else 0)
    fig = pyplot().figure(figsize=(9, 2 * max(rows, 1)))
    gray = {"cmap": "gray_r", "vmin": 0, "vmax": 1}
    cells = [([(denormalize(m.image[0]).clamp(0, 1).numpy(), gray)],
              f"true {m.true}, said {m.predicted}\n{100 * m.confidence:.1f}%") for m in shown]
    cells += [([], "")] * (-len(cells) % 5)  # empty cells: the saliency row starts a row of its own
    cells += [([(denormalize(m.image[0]).clamp(0, 1).numpy(), gray), (sal.numpy(), {"cmap": "hot", "alpha": 0.6})],
               f"saliency of 'said {m.predicted}'") for m, sal in zip(mistakes, saliencies)]
    fig.suptitle(title, y=1 - 0.12 / fig.get_figheight())
    _tile_grid(fig, cells, 5, (28, 28), 9, 1 - 0.45 / fig.get_figheight())
    return _save_figure(fig, path)


def save_filters_plot(model: nn.Module, path: Path, title: str) -> Path | None:
    """The first convolution's kernels (one panel per output channel, input channels side by side).

    Returns None, writing nothing, for a model without a convolution.
    """
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return None
    weight = conv.weight.detach().float().cpu()  # (out, in, kh, kw)
    out_ch, in_ch = weight.shape[:2]
    cols = min(8, out_ch)
    rows = -(-out_ch // cols)
    fig = pyplot().figure(figsize=(1.6 * cols * in_ch, 1.8 * rows + 0.4))
    limit = float(weight.abs().max()) or 1.0
    colours = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
    cells = [([(torch.cat(list(weight[index]), dim=1).numpy(), colours)], f"filter {index}")  # input channels side by side
             for index in range(out_ch)]
    fig.suptitle(title, y=1 - 0.1 / fig.get_figheight())
    _tile_grid(fig, cells, cols, tuple(weight.shape[2:]), 8, 1 - 0.3 / fig.get_figheight())
    return _save_figure(fig, path)


def _key_of(stem: str) -> str:
    return stem.removeprefix("mnist_model_")


def load_model_params(model: nn.Module, stem: str, out_dir: Path | str | None = REFERENCE_ROOT) -> nn.Module:
    """Load ``outputs/<stem>_params.pth`` (default: the committed reference) into ``model``; a file that does not
    fit raises ``IncompatibleWeightsError`` naming it (and both models, for another model's file)."""
    expected = identify_state_dict(model.state_dict()) or _key_of(stem)
    return load_weights(model, ArtifactPaths(stem, out_dir).params, expected)


def load_metrics_json(stem: str, out_dir: Path | str | None = REFERENCE_ROOT) -> dict:
    """The metrics record (config, history, summary) of ``outputs/<stem>_metrics.json`` (default: the reference)."""
    return json.loads(ArtifactPaths(stem, out_dir).metrics.read_text())


def save_feature_maps(maps: list[tuple[str, torch.Tensor]], fields: dict, path: Path, title: str,
                      max_channels: int = 16) -> Path:
    """One row per block (``inspection.block_outputs``): up to ``max_channels`` of its maps for one digit, each
    row labelled with the block's output shape and receptive field."""
    spatial = [(name, out[0]) for name, out in maps]
    cols = min(max_channels, max(out.shape[0] for _, out in spatial))
    fig, axes = pyplot().subplots(len(spatial), cols, figsize=(1.1 * cols, 1.25 * len(spatial)), squeeze=False)
    for row, (name, out) in enumerate(spatial):
        rf = fields.get(name)
        for col in range(cols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < out.shape[0]:
                ax.imshow(out[col].numpy(), cmap="viridis")
            else:
                ax.axis("off")
        axes[row, 0].set_ylabel(f"{name}\n{'x'.join(map(str, out.shape))}\nRF {rf}x{rf}" if rf else name,
                                fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def save_pipeline(source: torch.Tensor, digit: torch.Tensor, maps: list[tuple[str, torch.Tensor]],
                  probabilities: torch.Tensor, path: Path, title: str) -> Path:
    """The prediction in one row: the input as given, the 28x28 digit the model sees, each block's output
    (mean over its channels; ``maps`` from ``inspection.block_outputs``), and the softmax over the ten digits."""
    spatial = [(name, out[0].mean(0)) for name, out in maps]
    fig, axes = pyplot().subplots(1, len(spatial) + 3, figsize=(2.0 * (len(spatial) + 3) + 1.5, 2.6),
                                  gridspec_kw={"width_ratios": [1] * (len(spatial) + 2) + [2]})
    panels = [("input", source, "gray"), ("28x28, as MNIST", digit, "gray")]
    panels += [(f"{name}\n{'x'.join(map(str, m.shape))}", m, "viridis") for name, m in spatial]
    for ax, (label, image, cmap) in zip(axes, panels):
        ax.imshow(image.numpy(), cmap=cmap)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    bars = axes[-1]
    bars.bar(range(10), probabilities.numpy(), color=["tab:red" if i == int(probabilities.argmax()) else "tab:gray"
                                                     for i in range(10)])
    bars.set_xticks(range(10))
    bars.set_ylim(0, 1)
    bars.set_title("softmax", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save_figure(fig, path)


def save_saliency(digit: torch.Tensor, sal: torch.Tensor, path: Path, title: str) -> Path:
    """The digit, its saliency (|input gradient| of the predicted logit) and the two overlaid."""
    fig, axes = pyplot().subplots(1, 3, figsize=(8, 3))
    for ax, (label, image, cmap) in zip(axes, [("digit", digit, "gray"), ("saliency", sal, "hot"),
                                               ("overlay", None, None)]):
        if image is None:
            ax.imshow(digit.numpy(), cmap="gray")
            ax.imshow(sal.numpy(), cmap="hot", alpha=0.6)
        else:
            ax.imshow(image.numpy(), cmap=cmap)
        ax.set_title(label)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save_figure(fig, path)
