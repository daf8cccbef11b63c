"""Seeds side by side: a pool of spawned processes, each training whole runs through the library.

``train_side_by_side_and_save(cfgs, jobs)`` trains each config as ``runs.train_and_save`` would, at most
``jobs`` at a time, each process with ``cores // jobs`` threads, and returns their metrics records in order.
A run that fails comes back as its own exception object (the pool pickles it), wrapped in ``SeedFailed``
with its seed; the others are stopped. Ctrl-C or SIGTERM stops them all; each stops like an interrupted
run, so the files it wrote stay whole. Fewer threads give other floating-point sums: a run here does
not rerun bit for bit with more threads.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import asdict

import torch

from config import RunConfig
from training import runs


class SeedFailed(RuntimeError):
    """The run of ``seed`` raised ``error`` in its own process; ``error`` is the original exception."""

    def __init__(self, seed: int, error: BaseException) -> None:
        super().__init__(seed, error)
        self.seed, self.error = seed, error

    def __str__(self) -> str:
        return f"seed {self.seed} failed: {self.error}"


def threads_per_job(jobs: int) -> int:
    """Threads for each of ``jobs`` runs at once: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _worker_start(threads: int) -> None:
    """In each worker: its share of the cores, SIGTERM stopping a run as Ctrl-C does (files stay whole), and its
    console output dropped."""
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # K progress bars at once are unreadable: the parent reports


def _train(settings: dict, events: bool) -> dict:
    return runs.train_and_save(RunConfig(**settings), events=events)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Variables the spawned workers inherit (OpenMP reads its thread count before any code runs)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started; stop the running workers as on Ctrl-C, then wait for them."""
    processes = list((pool._processes or {}).values())  # the pool offers no public way to signal its workers
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: the worker's run stops after its last whole file
    for process in processes:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()


def train_side_by_side_and_save(cfgs: list[RunConfig], jobs: int, events: bool = True) -> list[dict]:
    """Each of ``cfgs`` trained and written as one run, up to ``jobs`` at a time; their metrics records in
    order. Raises ``SeedFailed`` for the first run to fail, ``runs.Interrupted`` on Ctrl-C or SIGTERM."""
    threads = threads_per_job(jobs)
    with _environment(OMP_NUM_THREADS=str(threads)):
        pool = ProcessPoolExecutor(min(jobs, len(cfgs)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_start, initargs=(threads,))
        try:
            futures: list[Future] = [pool.submit(_train, asdict(cfg), events) for cfg in cfgs]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for cfg, future in zip(cfgs, futures):
                if future in done and future.exception() is not None:
                    raise SeedFailed(cfg.seed, future.exception())
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            _stop(pool)
            raise runs.Interrupted(0, None) from None
        except BaseException:
            _stop(pool)
            raise
        finally:
            pool.shutdown(wait=True)
