"""The one training loop, for every model, loader and scheduler, and for K seeds trained at once.

``train(cfg, callbacks)`` is the whole pipeline of one run in one screen: model (accelerated), data,
optimizer, schedule, loop (``fit``; evaluation is ``analysis.evaluation``'s one inference loop). It
writes nothing; ``runs.RunWriter`` is the callback that saves. The CLI,
the benchmarks and the tests all drive it. Per-batch numbers stay on the device during an epoch and are
read back once at its end, so a GPU run has no host synchronisation per batch beyond the progress
bar's occasional refresh.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

import acceleration
import config
import data_utils
import lr_schedulers
import model_strategy
import optimizers
from analysis.evaluation import evaluate
from lr_schedulers import Schedule


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the kernel after every step.

    A training step allocates and frees activations of several MB; by default glibc hands those
    back (``munmap``/trim) and the next step page-faults them in again, zeroed: ~6,000 faults and
    ~20% of a V3 step on the CPU. Raising the mmap and trim thresholds removes that. Linux with
    glibc only; elsewhere nothing changes. Returns whether the setting took.
    """
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
    elapsed: float  # wall-clock seconds from the run's start to this epoch's end
    started: float | None = None  # the same clock at this epoch's start (absent in records before 2026-11-23)
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


OUTLIER_WEIGHT = 0.5  # the weight of the non-digits' term (Hendrycks, Mazeika & Dietterich 2019, "Deep Anomaly
# Detection with Outlier Exposure": 0.5 for vision)


def exposure_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0,
                  weight: float = OUTLIER_WEIGHT) -> Tensor:
    """Outlier exposure: the digits' mean cross-entropy plus ``weight`` times the non-digits' (labels ``NON_DIGIT``)
    mean cross-entropy to the uniform distribution, which teaches the network to be unsure of what is no digit.
    Logits (N, classes) with labels (N,), or (N, K, classes) with (N, K): one loss per model. No host sync."""
    digit = labels != data_utils.NON_DIGIT
    scores = logits.movedim(-1, 1) if logits.dim() == 3 else logits
    ce = F.cross_entropy(scores, labels.clamp(min=0), label_smoothing=label_smoothing, reduction="none")
    uniform = -F.log_softmax(logits, -1).mean(-1)
    digits, others = digit.sum(0).clamp(min=1), (~digit).sum(0).clamp(min=1)
    return (ce * digit).sum(0) / digits + weight * (uniform * ~digit).sum(0) / others


class TrainStep:
    """One optimisation step: zero the gradients, forward, loss, backward, optimizer step.

    Returns the batch's mean loss and its logits, detached; the caller may keep both. ``outliers``: the
    batches end with non-digits (``data_utils.NON_DIGIT``), trained by ``exposure_loss``.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, label_smoothing: float = 0.0,
                 outliers: bool = False) -> None:
        self.model, self.optimizer, self.label_smoothing = model, optimizer, label_smoothing
        self.outliers = outliers

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        return self.update(images, labels)

    def update(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Forward, loss, backward, optimizer step: the body every step runs (or records).

        Logits (N, K, classes) with labels (N, K) are K models trained at once (``seeds_at_once``): the
        loss is each model's mean, the sum of them is what is differentiated, so every model's gradient
        is the one it would have alone; the K means come back.
        """
        logits = self.model(images)
        if self.outliers:
            loss = exposure_loss(logits, labels, self.label_smoothing)
            (loss.sum() if loss.dim() else loss).backward()
        elif logits.dim() == 3:
            loss = F.cross_entropy(logits.movedim(2, 1), labels, label_smoothing=self.label_smoothing,
                                   reduction="none").mean(0)
            loss.sum().backward()
        else:
            loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
            loss.backward()
        self.optimizer.step()
        return loss.detach(), logits.detach()


class CudaGraphStep(TrainStep):
    """The same step, recorded once as a CUDA graph and replayed for every full-size batch.

    A tiny net's step is a few hundred kernels of microseconds each, so on a GPU it is launching them
    from Python, not running them, that takes the time. The first ``warmup`` steps run eagerly on a
    side stream (ordinary training steps, which also let cuDNN and the optimizer set up), as capture
    requires; the next full-size batch is recorded: forward, loss, backward and the optimizer update,
    which reads its learning rate from a device tensor that the schedule updates in place. Batches of
    another shape (an epoch's last) run eagerly on the same weights and optimizer state. Needs an
    optimizer built with ``graph_safe=True`` (see ``OPTIMIZERS``).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, label_smoothing: float = 0.0,
                 outliers: bool = False, warmup: int = 3) -> None:
        if warmup < 1:  # the optimizer's first step creates its state (momentum buffers): not recordable
            raise ValueError("CudaGraphStep needs at least one eager warm-up step")
        super().__init__(model, optimizer, label_smoothing, outliers)
        self.warmup, self.eager_steps = warmup, 0
        self.shape: torch.Size | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side = torch.cuda.Stream()

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        self.shape = images.shape if self.shape is None else self.shape
        if images.shape == self.shape and self.graph is None and self.eager_steps >= self.warmup:
            self._capture(images, labels)
        if images.shape == self.shape and self.graph is not None:
            self.images.copy_(images)
            self.labels.copy_(labels)
            self.graph.replay()
            return self.loss.clone(), self.logits.clone()  # the graph rewrites its outputs next step
        self.eager_steps += 1
        if self.graph is not None:
            return super().__call__(images, labels)
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            result = super().__call__(images, labels)
        torch.cuda.current_stream().wait_stream(self.side)
        return result

    def _capture(self, images: Tensor, labels: Tensor) -> None:
        for group in self.optimizer.param_groups:  # a float here would be recorded as a constant
            if not isinstance(group["lr"], Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=images.device)
        self.images, self.labels = images.clone(), labels.clone()
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss, self.logits = self.update(self.images, self.labels)


def train_one_epoch(step: TrainStep, batches: Iterable[tuple[Tensor, Tensor]], num_batches: int,
                    schedule: Schedule, desc: str, refresh_every: int | None = 25) -> tuple[Tensor, Tensor, Tensor]:
    """One pass over the training batches; per-batch mean losses and correct counts (on the device), sizes.

    Every ``refresh_every`` batches (never when None) the progress bar reads the loss back, which is
    also the early divergence check; on a GPU that read is the loop's only host synchronisation. For K
    models at once (logits (N, K, classes)) losses and counts are per model: (batches, K). Sizes count digits:
    a batch's non-digits (outlier exposure) are in its loss, not in its accuracy.
    """
    step.model.train()
    losses, hits, sizes = [], [], []
    bar = tqdm(batches, total=num_batches, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5)
    for i, (images, labels) in enumerate(bar):
        loss, logits = step(images, labels)
        schedule.after_batch()
        losses.append(loss)
        hits.append((logits.argmax(-1) == labels).sum(0))
        sizes.append((labels.view(len(labels), -1)[:, 0] != data_utils.NON_DIGIT).sum() if step.outliers else len(labels))
        if refresh_every and i % refresh_every == 0:
            current = loss.mean().item()
            if not math.isfinite(current):
                raise DivergenceError(f"training loss became {current} at batch {i + 1}")
            bar.set_postfix(loss=f"{current:.4f}", acc=f"{100 * hits[-1].float().mean().item() / float(sizes[-1]):.2f}%",
                            lr=f"{float(step.optimizer.param_groups[0]['lr']):.4g}", refresh=False)
    sizes = torch.stack(sizes).cpu() if step.outliers else torch.tensor(sizes)
    return torch.stack(losses).float(), torch.stack(hits), sizes


def fit(step: TrainStep, pipeline: data_utils.DataPipeline, schedule: Schedule, epochs: int,
        histories: list[History], scores: Callable[[Iterable[tuple[Tensor, Tensor]]], list[tuple[float, float]]],
        on_epoch_end: Callable[[list[EpochRecord]], None] | None = None, started_at: float | None = None,
        stopper: EarlyStopping | None = None, names: list[str] | None = None) -> list[History]:
    """The one training loop: train up to epoch ``epochs``, evaluate after each, for one model or K stacked ones.

    ``step`` trains what ``histories`` describe: one model (one history) or K models at once (logits
    (N, K, classes), K histories, ``training.seeds_at_once``); ``scores(batches)`` is each model's (loss,
    accuracy) on evaluation batches. ``histories`` continue a resumed run after their last recorded epoch;
    ``on_epoch_end`` sees every finished epoch's records; ``stopper`` may end it early (on the first
    model's validation accuracy). ``started_at`` is the ``time.perf_counter()`` that ``elapsed`` counts
    from (default: now); ``names`` label K models in the epoch line.
    """
    started_at = time.perf_counter() if started_at is None else started_at
    k = len(histories)
    for epoch in range(len(histories[0].epochs) + 1, epochs + 1):
        lr = float(step.optimizer.param_groups[0]["lr"])
        start = time.perf_counter()
        losses, hits, sizes = train_one_epoch(step, pipeline.train.epoch(epoch), len(pipeline.train), schedule,
                                              f"epoch {epoch}/{epochs}" + (f", {k} at once" if k > 1 else ""))
        # the epoch's one read-back from the device; (batches, K) whether one model or K
        losses, hits = losses.cpu().view(len(sizes), k), hits.cpu().view(len(sizes), k)
        seen = int(sizes.sum())
        if not torch.isfinite(losses).all():
            raise DivergenceError(f"training loss became non-finite in epoch {epoch}")
        seconds = time.perf_counter() - start
        tests = scores(pipeline.test)
        vals = scores(pipeline.val) if pipeline.val is not None else [(None, None)] * k
        schedule.after_epoch(vals[0][0] if vals[0][0] is not None else tests[0][0])
        records = []
        for s, history in enumerate(histories):
            record = EpochRecord(epoch=epoch, train_loss=float((losses[:, s] * sizes).sum()) / seen,
                                 train_acc=100.0 * float(hits[:, s].sum()) / seen,
                                 test_loss=tests[s][0], test_acc=tests[s][1], lr=lr, seconds=seconds,
                                 images_per_sec=seen / seconds, elapsed=time.perf_counter() - started_at,
                                 started=start - started_at, val_loss=vals[s][0], val_acc=vals[s][1])
            history.epochs.append(record)
            history.batch_train_loss += losses[:, s].tolist()
            history.batch_train_acc += (100.0 * hits[:, s] / sizes).tolist()
            records.append(record)
        tqdm.write(_epoch_line(records, names))
        if on_epoch_end is not None:
            on_epoch_end(records)
        if stopper is not None and stopper.should_stop(histories[0]):
            break
    return histories


def _epoch_line(records: list[EpochRecord], names: list[str] | None) -> str:
    r = records[0]
    if len(records) > 1:
        names = names or [f"model {s}" for s in range(len(records))]
        return (f"epoch {r.epoch:>3}: test acc " + ", ".join(f"{n} {x.test_acc:.2f}%" for n, x in zip(names, records))
                + f" | {r.seconds:.1f}s for {len(records)}")
    val = f", val {r.val_acc:.2f}%" if r.val_acc is not None else ""
    return (f"epoch {r.epoch:>3}: train loss {r.train_loss:.4f}, acc {r.train_acc:.2f}%"
            f" | test loss {r.test_loss:.4f}, acc {r.test_acc:.2f}%{val}"
            f" | lr {r.lr:.4g} | {r.seconds:.1f}s, {r.images_per_sec:,.0f} img/s")


def checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
                     history: History, config: dict) -> dict:
    """Everything a resumed run needs to continue exactly: weights, optimizer, schedule, RNG, history.

    Batches depend only on (seed, epoch), so the global RNG (dropout) is the only random state.
    Only tensors and plain containers: it loads with ``torch.load(..., weights_only=True)``.
    """
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": torch.get_rng_state(), "history": history.to_dict(), "config": config}


class CheckpointMismatch(ValueError):
    """A checkpoint whose contents do not fit the run being resumed (another model, optimizer or format)."""


def restore(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule) -> History:
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        return History.from_dict(state["history"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        reason = (str(exc).splitlines() or [""])[0][:160]
        raise CheckpointMismatch(f"does not fit this run ({type(exc).__name__}: {reason})") from None


# --------------------------------------------------------------------------- one run, from a config


@dataclass
class Run:
    """Everything one training run is made of; ``history`` grows as it trains."""

    cfg: config.RunConfig
    strategy: model_strategy.ModelStrategy
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    pipeline: data_utils.DataPipeline
    history: History
    graphed: bool  # whether full batches replay a CUDA graph
    started_at: float  # time.perf_counter() at the run's start: the clock of every epoch record
    together: list[int] | None = None  # the seeds it was trained with as one network (seeds_at_once), if any

    def checkpoint(self) -> dict:
        return checkpoint_state(self.model, self.optimizer, self.schedule, self.history, asdict(self.cfg))


class Callbacks(Protocol):
    """What a run reports to (``runs.RunWriter``): its start, with everything built, and each epoch."""

    def on_start(self, run: Run) -> None: ...

    def on_epoch_end(self, run: Run, record: EpochRecord) -> None: ...


def optimization(cfg: config.RunConfig, model: nn.Module, batches_per_epoch: int) -> tuple[torch.optim.Optimizer,
                                                                                          Schedule, bool]:
    """The optimizer and schedule ``cfg`` names for ``model``, and whether full batches will replay a CUDA graph
    (its optimizer is then built graph-safe)."""
    graphed = bool(cfg.cuda_graph) and optimizers.OPTIMIZERS[cfg.optimizer].graph_safe is not None
    optimizer = optimizers.build_optimizer(cfg.optimizer, model, cfg.max_lr if cfg.lr is None else cfg.lr,
                                           cfg.momentum, cfg.weight_decay, graphed)
    schedule = lr_schedulers.get_scheduler(cfg.scheduler).build(
        optimizer, lr_schedulers.ScheduleContext(cfg.epochs, batches_per_epoch, cfg.max_lr))
    return optimizer, schedule, graphed


def build(cfg: config.RunConfig, state: dict | None = None, started_at: float | None = None) -> Run:
    """Model, data, optimizer and schedule for ``cfg``; ``state`` (a checkpoint) continues a run."""
    started_at = time.perf_counter() if started_at is None else started_at
    keep_freed_memory()
    config.check(cfg)
    strategy = model_strategy.get_strategy(cfg.model)
    torch.manual_seed(cfg.seed)
    model, _ = acceleration.accelerate(strategy.get_model(cfg.device, cfg.knobs), cfg.backend)
    splits = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)
    config.check_sizes(cfg, len(splits["train"]))
    writers = None
    if cfg.val_split and cfg.val_split_by != "random":
        qmnist = data_utils.read_qmnist(cfg.data_dir, "train")
        if qmnist is not None and len(qmnist) != len(splits["train"]):
            qmnist = None  # writer ids belong to MNIST's own training images, not to other data in its format
        if qmnist is None and cfg.val_split_by == "writers":
            raise config.ConfigError("val_split_by", f"writers needs {data_utils.QMNIST_FILES['train'][0]} in"
                                     f" {cfg.data_dir}, for MNIST's {data_utils.SPLIT_SIZES['train']:,} training images")
        writers = None if qmnist is None else qmnist[:, 2]
    pipeline = data_utils.build_pipeline(splits, cfg.loader, cfg.batch_size, cfg.seed, cfg.device,
                                         cfg.subset, cfg.val_split, augment=cfg.augment, writers=writers,
                                         outliers=cfg.outliers)
    if pipeline.num_train == 0:
        raise config.ConfigError("val_split", f"holding out the whole writers of {cfg.val_split} images leaves none to"
                                 " train on; hold out fewer, or --val-split-by random")
    optimizer, schedule, graphed = optimization(cfg, model, len(pipeline.train))
    history = restore(state, model, optimizer, schedule) if state is not None else History()
    return Run(cfg, strategy, model, optimizer, schedule, pipeline, history, graphed, started_at)


def train(cfg: config.RunConfig, callbacks: Callbacks | None = None, state: dict | None = None,
          started_at: float | None = None) -> Run:
    """Train one model as ``cfg`` says and return the run; saving is the callbacks' business.

    ``started_at`` is the clock the epoch records count from (default: now); a benchmark passes its
    process start. Raises ``DivergenceError``; Ctrl-C propagates after the last finished epoch's callback.
    """
    run = build(cfg, state, started_at)
    if callbacks is not None:
        callbacks.on_start(run)
    step = (CudaGraphStep if run.graphed else TrainStep)(run.model, run.optimizer, cfg.label_smoothing,
                                                         bool(cfg.outliers))
    fit(step, run.pipeline, run.schedule, cfg.epochs, [run.history], lambda batches: [evaluate(run.model, batches)],
        None if callbacks is None else (lambda records: callbacks.on_epoch_end(run, records[0])),
        started_at=run.started_at, stopper=EarlyStopping(cfg.patience) if cfg.patience else None)
    return run
