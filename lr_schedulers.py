"""Scheduler strategies: each builds its torch scheduler and says when it steps.

The training loop calls ``after_batch()`` after every optimizer step and ``after_epoch(metric)``
after every evaluation; the schedule's cadence decides which of the two moves the rate, so the
loop never asks which scheduler it has (timm's ``step_update`` / ``step`` split).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from torch.optim import Optimizer, lr_scheduler

from core.registry import Registry


class Cadence(Enum):
    PER_BATCH = "per batch"
    PER_EPOCH = "per epoch"
    ON_METRIC = "per epoch, on validation loss (test loss without a validation split)"


@dataclass(frozen=True)
class ScheduleContext:
    """What a scheduler may need to know about the run."""

    epochs: int
    steps_per_epoch: int
    max_lr: float | None = None

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


class Schedule:
    """A torch scheduler plus its cadence; the two hooks the training loop calls."""

    def __init__(self, scheduler: Any, cadence: Cadence) -> None:
        self.scheduler, self.cadence = scheduler, cadence

    def after_batch(self) -> None:
        if self.cadence is Cadence.PER_BATCH:
            self.scheduler.step()

    def after_epoch(self, metric: float) -> None:
        if self.cadence is Cadence.PER_EPOCH:
            self.scheduler.step()
        elif self.cadence is Cadence.ON_METRIC:
            self.scheduler.step(metric)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


@dataclass(frozen=True)
class SchedulerStrategy:
    """A torch scheduler's factory, its cadence, the run settings it reads and its fixed constants.

    ``reads``: ``lr`` (the constant or initial rate) or ``max_lr`` (OneCycle's peak); a flag for the
    other is refused by ``config.resolve``. ``constants`` go into every run's record.
    """

    name: str
    description: str
    cadence: Cadence
    reads: str
    factory: Callable[[Optimizer, ScheduleContext, dict], Any]
    constants: dict = field(default_factory=dict)

    def build(self, optimizer: Optimizer, context: ScheduleContext) -> Schedule:
        return Schedule(self.factory(optimizer, context, self.constants), self.cadence)


SCHEDULERS: Registry[SchedulerStrategy] = Registry("scheduler")


def register(strategy: SchedulerStrategy) -> SchedulerStrategy:
    return SCHEDULERS.register(strategy.name, strategy)


# The original project's OneCycle: warm up for 30%, cosine down, start and end a 7.5th of the peak.
register(SchedulerStrategy(
    "onecycle", "OneCycleLR up to --max_lr over 30% of the steps, cosine, div and final div 7.5",
    Cadence.PER_BATCH, "max_lr",
    lambda opt, ctx, c: lr_scheduler.OneCycleLR(
        opt, max_lr=ctx.max_lr, total_steps=ctx.total_steps, pct_start=c["pct_start"], anneal_strategy="cos",
        div_factor=c["div_factor"], final_div_factor=c["final_div_factor"], cycle_momentum=False),
    {"pct_start": 0.3, "div_factor": 7.5, "final_div_factor": 7.5, "anneal_strategy": "cos"}))
register(SchedulerStrategy(
    "step", "StepLR: --lr, divided by 10 every 6 epochs", Cadence.PER_EPOCH, "lr",
    lambda opt, ctx, c: lr_scheduler.StepLR(opt, step_size=c["step_size"], gamma=c["gamma"]),
    {"step_size": 6, "gamma": 0.1}))
register(SchedulerStrategy(
    "plateau", "ReduceLROnPlateau: halve --lr after 3 epochs without a lower validation loss", Cadence.ON_METRIC,
    "lr", lambda opt, ctx, c: lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=c["factor"],
                                                             patience=c["patience"]),
    {"factor": 0.5, "patience": 3}))
register(SchedulerStrategy(
    "cosine", "cosine annealing from --lr to zero over the run", Cadence.PER_BATCH, "lr",
    lambda opt, ctx, c: lr_scheduler.CosineAnnealingLR(opt, T_max=ctx.total_steps, eta_min=c["eta_min"]),
    {"eta_min": 0.0}))
register(SchedulerStrategy(
    "none", "constant --lr", Cadence.PER_EPOCH, "lr",
    lambda opt, ctx, c: lr_scheduler.LambdaLR(opt, lambda _: 1.0)))


def get_scheduler(name: str) -> SchedulerStrategy:
    """The strategy for ``name``; unknown names raise ``ValueError`` listing the valid ones."""
    return SCHEDULERS[name]
