"""One training loop and one evaluation loop, for every model, loader and scheduler.

Kept in its own module because ``main.py`` (the CLI), the benchmarks and the tests all drive it.
Per-batch numbers stay on the device during an epoch and are read back once at its end, so a GPU
run has no host synchronisation per batch beyond the progress bar's occasional refresh.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from lr_schedulers import Schedule


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the kernel after every step.

    A training step allocates and frees activations of several MB; by default glibc hands those
    back (``munmap``/trim) and the next step page-faults them in again, zeroed: ~6,000 faults and
    ~20% of a V3 step on the CPU. Raising the mmap and trim thresholds removes that. Linux with
    glibc only; elsewhere nothing changes. Returns whether the setting took.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 * 1024 * 1024)) and bool(mallopt(m_trim_threshold, 1 << 30))


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and the rates it is used with when neither the recipe nor a flag gives one."""

    factory: Callable[..., torch.optim.Optimizer]
    lr: float
    max_lr: float
    uses_momentum: bool


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec(torch.optim.SGD, lr=0.1, max_lr=0.75, uses_momentum=True),
    "adam": OptimizerSpec(torch.optim.Adam, lr=1e-3, max_lr=3e-3, uses_momentum=False),
    "adamw": OptimizerSpec(torch.optim.AdamW, lr=1e-3, max_lr=3e-3, uses_momentum=False),
    "adagrad": OptimizerSpec(torch.optim.Adagrad, lr=1e-2, max_lr=5e-2, uses_momentum=False),
}


def build_optimizer(name: str, model: nn.Module, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    spec = OPTIMIZERS[name]
    extra = {"momentum": momentum} if spec.uses_momentum else {}
    return spec.factory(model.parameters(), lr=lr, weight_decay=weight_decay, **extra)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lr: float
    seconds: float
    images_per_sec: float
    elapsed: float  # wall-clock seconds from the run's start (process start in main.py) to this epoch's end
    val_loss: float | None = None
    val_acc: float | None = None


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    batch_train_loss: list[float] = field(default_factory=list)
    batch_train_acc: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"epochs": [asdict(e) for e in self.epochs],
                "batch_train_loss": self.batch_train_loss, "batch_train_acc": self.batch_train_acc}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        return cls([EpochRecord(**e) for e in data["epochs"]], list(data["batch_train_loss"]),
                   list(data["batch_train_acc"]))


def best_validation_epoch(history: History) -> EpochRecord | None:
    """The epoch with the highest validation accuracy (the earliest on ties); None without validation."""
    scored = [e for e in history.epochs if e.val_acc is not None]
    return max(scored, key=lambda e: (e.val_acc, -e.epoch)) if scored else None


@dataclass(frozen=True)
class EarlyStopping:
    """Stop once ``patience`` epochs in a row bring no higher validation accuracy than the best so far.

    Read from the history alone, so a resumed run stops exactly where the uninterrupted one would.
    """

    patience: int

    def should_stop(self, history: History) -> bool:
        best = best_validation_epoch(history)
        return best is not None and history.epochs[-1].epoch - best.epoch >= self.patience


class DivergenceError(RuntimeError):
    """The training loss stopped being a finite number."""


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
             collect: list[tuple[Tensor, Tensor, Tensor]] | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) over all batches, without augmentation or gradients.

    ``collect``, when given, receives each batch's (images, logits, labels) for deeper analysis.
    """
    model.eval()
    loss_sum = correct = count = None
    for images, labels in batches:
        logits = model(images)
        if collect is not None:
            collect.append((images, logits, labels))
        loss = F.cross_entropy(logits, labels, reduction="sum")
        hits = (logits.argmax(1) == labels).sum()
        loss_sum = loss if loss_sum is None else loss_sum + loss
        correct = hits if correct is None else correct + hits
        count = len(labels) if count is None else count + len(labels)
    if count is None:
        return math.nan, math.nan
    return float(loss_sum) / count, 100.0 * float(correct) / count


def train_one_epoch(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], num_batches: int,
                    optimizer: torch.optim.Optimizer, schedule: Schedule, label_smoothing: float,
                    desc: str, refresh_every: int = 25) -> tuple[Tensor, Tensor, Tensor]:
    """One pass over the training batches; returns per-batch mean losses, correct counts and sizes."""
    model.train()
    losses, hits, sizes = [], [], []
    bar = tqdm(batches, total=num_batches, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5)
    for step, (images, labels) in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        loss.backward()
        optimizer.step()
        schedule.after_batch()
        losses.append(loss.detach())
        hits.append((logits.detach().argmax(1) == labels).sum())
        sizes.append(len(labels))
        if step % refresh_every == 0:
            current = loss.item()
            if not math.isfinite(current):
                raise DivergenceError(f"training loss became {current} at batch {step + 1}")
            bar.set_postfix(loss=f"{current:.4f}", acc=f"{100 * hits[-1].item() / sizes[-1]:.2f}%",
                            lr=f"{optimizer.param_groups[0]['lr']:.4g}", refresh=False)
    # one device-to-host copy per epoch
    return torch.stack(losses).float().cpu(), torch.stack(hits).cpu(), torch.tensor(sizes)


def fit(model: nn.Module, pipeline, optimizer: torch.optim.Optimizer, schedule: Schedule, epochs: int,
        label_smoothing: float = 0.0,
        on_epoch_end: Callable[[EpochRecord, History], None] | None = None,
        started_at: float | None = None, history: History | None = None,
        stopper: EarlyStopping | None = None) -> History:
    """Train up to epoch ``epochs`` and evaluate after each; ``on_epoch_end`` sees every finished epoch.

    ``started_at`` is the ``time.perf_counter()`` that ``elapsed`` counts from (default: now).
    ``history`` continues a resumed run after its last recorded epoch; ``stopper`` may end it early.
    """
    started_at = time.perf_counter() if started_at is None else started_at
    history = History() if history is None else history
    for epoch in range(len(history.epochs) + 1, epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        losses, hits, sizes = train_one_epoch(model, pipeline.train.epoch(epoch), len(pipeline.train),
                                              optimizer, schedule, label_smoothing, f"epoch {epoch}/{epochs}")
        seen = int(sizes.sum())
        if not torch.isfinite(losses).all():
            raise DivergenceError(f"training loss became non-finite in epoch {epoch}")
        seconds = time.perf_counter() - start
        test_loss, test_acc = evaluate(model, pipeline.test)
        val_loss, val_acc = evaluate(model, pipeline.val) if pipeline.val is not None else (None, None)
        schedule.after_epoch(val_loss if val_loss is not None else test_loss)
        record = EpochRecord(epoch=epoch, train_loss=float((losses * sizes).sum()) / seen,
                             train_acc=100.0 * float(hits.sum()) / seen,
                             test_loss=test_loss, test_acc=test_acc, lr=lr, seconds=seconds,
                             images_per_sec=seen / seconds, elapsed=time.perf_counter() - started_at,
                             val_loss=val_loss, val_acc=val_acc)
        history.epochs.append(record)
        history.batch_train_loss += losses.tolist()
        history.batch_train_acc += (100.0 * hits / sizes).tolist()
        if on_epoch_end is not None:
            on_epoch_end(record, history)
        if stopper is not None and stopper.should_stop(history):
            break
    return history


def checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
                     history: History, config: dict) -> dict:
    """Everything a resumed run needs to continue exactly: weights, optimizer, schedule, RNG, history.

    Batches depend only on (seed, epoch), so the global RNG (dropout) is the only random state.
    Only tensors and plain containers: it loads with ``torch.load(..., weights_only=True)``.
    """
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": torch.get_rng_state(), "history": history.to_dict(), "config": config}


def restore(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule) -> History:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["rng"])
    return History.from_dict(state["history"])
