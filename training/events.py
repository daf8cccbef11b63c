"""A run's TensorBoard events: ``tensorboard --logdir runs`` shows every run side by side, live while it trains.

Each run writes to a folder of its own, ``<out-dir>/events/<stem>/<start time>-seed<N>`` (a resumed run
continues the newest folder of its seed). After every epoch: the training loss and accuracy of each of its
batches (read from the history, which the epoch already brought back from the device, so the loop itself
does nothing more), the learning rate the epoch started with, and the train, test and (with a split)
validation loss and accuracy. At the end: the run's settings with its final metrics as hparams, and the
confusion-matrix and mistakes figures. Nothing here is read back by the zoo; the events are for people.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from config import RunConfig
from core.artifacts import WriteError
from training import loop


def folder(root: Path, stem: str, seed: int, resume: bool) -> Path:
    """Where a run's events go: the newest folder of this seed when resuming, else a new one named by the time."""
    mine = re.compile(rf"\d{{8}}-\d{{6}}-seed{seed}(-\d+)?")  # seed 1's folders, not seed 10's
    runs = sorted(p for p in (root / "events" / stem).glob("*") if mine.fullmatch(p.name)) if resume else []
    if runs:
        return runs[-1]
    name, n = f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}", 1
    while (root / "events" / stem / (name if n == 1 else f"{name}-{n}")).exists():  # two runs in one second
        n += 1
    return root / "events" / stem / (name if n == 1 else f"{name}-{n}")


class EventLog:
    """The TensorBoard writer of one run (``torch.utils.tensorboard``), opened on its first epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = None

    @property
    def writer(self):  # noqa: ANN201 - torch.utils.tensorboard.SummaryWriter, imported when a run writes events
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - tensorboard only where runs train

            try:
                self._writer = SummaryWriter(str(self.path))
            except OSError as exc:  # an unwritable out-dir: the run's one-line write error, like any other file
                raise WriteError(self.path, exc.strerror or type(exc).__name__) from None
        return self._writer

    def epoch(self, record: loop.EpochRecord, losses: list[float], accs: list[float]) -> None:
        """One finished epoch: its batches' training loss and accuracy, then its per-epoch scalars; flushed."""
        w, first = self.writer, (record.epoch - 1) * len(losses)
        for i, (loss, acc) in enumerate(zip(losses, accs)):
            w.add_scalar("batch/train_loss", loss, first + i + 1)
            w.add_scalar("batch/train_acc", acc, first + i + 1)
        for name in ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "lr", "seconds"):
            value = getattr(record, name)
            if value is not None:
                w.add_scalar(f"epoch/{name}", value, record.epoch)
        w.flush()

    def finish(self, cfg: RunConfig, summary: dict, figures: dict[str, Path]) -> None:
        """The settings and final metrics as hparams, the figures as images; closed."""
        settings = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in cfg.to_dict().items()
                    if k not in ("data_dir", "out_dir", "scheduler_constants")}
        metrics = {"hparam/final_test_acc": summary["final_test_acc"], "hparam/params": summary["params"]}
        self.writer.add_hparams(settings, metrics, run_name=".")
        for tag, path in figures.items():
            if path.is_file():
                with Image.open(path) as figure:  # its pixels as they are (uint8), without asking matplotlib to read
                    pixels = np.array(figure.convert("RGB"))
                self.writer.add_image(tag, torch.from_numpy(pixels), dataformats="HWC")
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
