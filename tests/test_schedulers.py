"""Scheduler strategies: the shapes the original project promised, driven through the loop's hooks."""
from __future__ import annotations

import pytest
import torch

import lr_schedulers
from lr_schedulers import ScheduleContext


def _optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def _lr(opt: torch.optim.Optimizer) -> float:
    return opt.param_groups[0]["lr"]


def test_onecycle_peaks_at_max_lr_after_30_percent_and_ends_at_max_lr_over_7_5_squared() -> None:
    opt = _optimizer()
    schedule = lr_schedulers.get_scheduler("onecycle").build(opt, ScheduleContext(epochs=10, steps_per_epoch=10, max_lr=0.75))
    rates = [_lr(opt)]
    for _ in range(100):
        opt.step()
        schedule.after_batch()
        rates.append(_lr(opt))
    rates = rates[:100]  # the rate used by each of the 100 steps
    assert rates[0] == pytest.approx(0.75 / 7.5)
    assert max(rates) == pytest.approx(0.75)
    assert rates.index(max(rates)) == 29  # step 30 of 100, counting from step 0 at the initial rate
    assert rates[-1] == pytest.approx(0.75 / 7.5 / 7.5, rel=1e-3)


def test_step_divides_the_rate_by_ten_after_epoch_six() -> None:
    opt = _optimizer(0.1)
    schedule = lr_schedulers.get_scheduler("step").build(opt, ScheduleContext(15, 5, 0.75))
    per_epoch = []
    for _ in range(8):
        per_epoch.append(_lr(opt))
        for _ in range(5):
            opt.step()
            schedule.after_batch()  # a per-epoch schedule ignores batches
        schedule.after_epoch(metric=1.0)
    assert per_epoch[:6] == pytest.approx([0.1] * 6)
    assert per_epoch[6:] == pytest.approx([0.01, 0.01])


def test_plateau_halves_the_rate_after_a_flat_metric() -> None:
    opt = _optimizer(0.1)
    schedule = lr_schedulers.get_scheduler("plateau").build(opt, ScheduleContext(15, 5, 0.75))
    opt.step()
    schedule.after_epoch(1.0)
    for _ in range(3):
        schedule.after_epoch(1.0)
        assert _lr(opt) == pytest.approx(0.1)
    schedule.after_epoch(1.0)  # the fourth epoch without improvement exceeds patience 3
    assert _lr(opt) == pytest.approx(0.05)


def test_cosine_anneals_to_zero_per_batch_and_none_stays_constant() -> None:
    opt = _optimizer(0.1)
    schedule = lr_schedulers.get_scheduler("cosine").build(opt, ScheduleContext(2, 10, 0.75))
    for _ in range(20):
        opt.step()
        schedule.after_batch()
    assert _lr(opt) == pytest.approx(0.0, abs=1e-12)
    opt = _optimizer(0.1)
    schedule = lr_schedulers.get_scheduler("none").build(opt, ScheduleContext(2, 10, 0.75))
    for _ in range(3):
        opt.step()
        schedule.after_batch()
        schedule.after_epoch(0.5)
    assert _lr(opt) == pytest.approx(0.1)


def test_unknown_scheduler_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="onecycle.*step.*plateau.*cosine.*none"):
        lr_schedulers.get_scheduler("warmup")
