"""A run, recorded: the one writer of a run's files.

``RunWriter`` is ``loop.train``'s callback: after every epoch the checkpoint, the running metrics
and (with a validation split) the selected epoch's params; on an interrupt or a divergence the metrics
marked so; at the end the params, evaluation, summary and figures. ``train_and_save`` is one run,
``train_together_and_save`` K seeds trained as one network, each written as its own run.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

import config
import model_strategy
import visualization
from analysis import evaluation, inspection
from config import ConfigError, RunConfig
from core import provenance
from core.artifacts import (
    ArtifactPaths,
    WriteError,
    atomic_save_json,
    atomic_write_many,
    json_bytes,
    safetensors_bytes,
    torch_bytes,
)
from training import loop, seeds_at_once
from training.events import EventLog
from training.events import folder as event_folder


class Interrupted(Exception):
    """Ctrl-C or SIGTERM; ``epochs_done`` finished epochs are in the checkpoint. ``finishing``: it came while
    the final files were written, after every epoch was checkpointed (``--resume`` writes them again)."""

    def __init__(self, epochs_done: int, checkpoint, finishing: bool = False) -> None:  # noqa: ANN001
        super().__init__(epochs_done, checkpoint)
        self.epochs_done, self.checkpoint, self.finishing = epochs_done, checkpoint, finishing

    def __reduce__(self) -> tuple:
        return type(self), (self.epochs_done, self.checkpoint, self.finishing)


class RunWriteError(WriteError):
    """A file of a run could not be written; ``epochs_saved`` epochs are in ``checkpoint`` (0: none)."""

    def __init__(self, error: WriteError, epochs_saved: int, checkpoint: Path) -> None:
        super().__init__(error.path, error.reason)
        self.epochs_saved, self.checkpoint = epochs_saved, checkpoint

    def __reduce__(self) -> tuple:
        return type(self), (WriteError(self.path, self.reason), self.epochs_saved, self.checkpoint)


def metrics_record(run: loop.Run, status: str) -> dict:
    """The metrics JSON: config, environment, data, history and a summary; ``status`` says how far it got.

    status: ``running`` (written after every epoch), ``complete``, ``interrupted`` or ``diverged``.
    """
    cfg, history, epochs = run.cfg, run.history, run.history.epochs
    best_test = max(epochs, key=lambda e: e.test_acc) if epochs else None
    best_val = loop.best_validation_epoch(history)
    paths = ArtifactPaths(run.strategy.stem, cfg.out_dir)
    return {
        "status": status,
        "config": cfg.to_dict(),
        "environment": provenance.environment(cfg.device, cfg.backend, run.graphed if cfg.cuda_graph is not None
                                              else None),
        "data": {"train_images": run.pipeline.num_train, "val_images": run.pipeline.num_val,
                 "test_images": run.pipeline.num_test, "val_split": run.pipeline.val_kind},
        "history": history.to_dict(),
        "summary": {
            "model": run.strategy.key, "params": model_strategy.param_count(run.model), "epochs_run": len(epochs),
            "final_test_acc": epochs[-1].test_acc if epochs else None,
            "selected_on_validation": None if best_val is None else {
                "epoch": best_val.epoch, "val_acc": best_val.val_acc, "test_acc": best_val.test_acc,
                "params_file": paths.best_params.name,
                "note": "epoch chosen on the held-out validation split; its test accuracy is a fair estimate"},
            "stopped_early_after_epoch": epochs[-1].epoch if status == "complete" and len(epochs) < cfg.epochs
            else None,
            "best_test_acc_selected_on_test": None if best_test is None else {
                "acc": best_test.test_acc, "epoch": best_test.epoch,
                "note": "chosen on the test set itself: optimistic, not a result"},
            "train_seconds": sum(e.seconds for e in epochs),
            "total_seconds": time.perf_counter() - run.started_at,
            "seeds_at_once": None if run.together is None else {
                "seeds": run.together,
                "note": "trained as one network with these seeds' copies side by side (seeds_at_once.py);"
                        " epoch seconds are the shared epoch's"},
        },
    }


def architecture_summary(strategy: model_strategy.ModelStrategy, knobs: dict | None = None) -> str:
    """The torchsummary text of the model as ``models/`` builds it (what ``--summary-only`` writes), not of the
    run's accelerated copy, whose fused modules are how it ran, not what it is. The throwaway build's
    initialisation does not touch the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        model = strategy.get_model("cpu", knobs)
    return visualization.summary_file(model, strategy.title(model, knobs))


class RunWriter:
    """Everything a run writes, and when; nothing else writes a run's files."""

    def __init__(self, cfg: RunConfig, events: bool = True, resume: bool = False) -> None:
        self.cfg = cfg
        self.paths = ArtifactPaths(model_strategy.get_strategy(cfg.model).stem, cfg.out_dir)
        self.run: loop.Run | None = None
        self.epochs_saved = 0  # epochs held by the checkpoint on disk
        self.events = EventLog(event_folder(self.paths.base, self.paths.stem, cfg.seed, resume)) if events else None
        self.epochs_logged = 0  # epochs already in the event file

    def _log_epochs(self, run: loop.Run) -> None:
        """The epochs not yet in the event file (every one, for seeds trained at once)."""
        if self.events is None:
            return
        history, batches = run.history, len(run.pipeline.train)
        for record in history.epochs[self.epochs_logged:]:
            first = (record.epoch - 1) * batches
            self.events.epoch(record, history.batch_train_loss[first:first + batches],
                              history.batch_train_acc[first:first + batches])
        self.epochs_logged = len(history.epochs)

    def load_checkpoint(self) -> dict:
        """The checkpoint to resume from, refused when it is missing, unreadable or from other settings."""
        path = self.paths.checkpoint
        if not path.exists():
            raise ConfigError("resume", f"no checkpoint at {path} (train without --resume first)")
        if not path.is_file():
            raise ConfigError("resume", f"{path} is not a regular file")
        try:
            state = torch.load(path, map_location=self.cfg.device, weights_only=True)
            saved, epochs = state["config"], state["history"]["epochs"]
            model = model_strategy.get_strategy(self.cfg.model).get_model("cpu", self.cfg.knobs)
            model_strategy.check_state_dict(state["model"], model, path, self.cfg.model)
        except model_strategy.IncompatibleWeightsError as exc:
            raise ConfigError("resume", str(exc)) from None
        except PermissionError as exc:
            raise ConfigError("resume", f"{path} cannot be read ({exc.strerror})") from None
        except Exception as exc:  # truncated, foreign or tampered files all end here
            raise ConfigError("resume", f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
        changed = config.resume_conflicts(saved, self.cfg)
        if changed:
            wanted = asdict(self.cfg)
            diffs = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)} (now {wanted[k]})" for k in changed)
            raise ConfigError("resume", f"{path} was written with {diffs}; give the same flags to resume")
        self.epochs_saved = self.epochs_logged = len(epochs)
        return state

    def on_start(self, run: loop.Run) -> None:
        self.run = run

    def on_epoch_end(self, run: loop.Run, record: loop.EpochRecord) -> None:
        """Checkpoint, running metrics and (when validation selects this epoch) its params, as one step."""
        files = {self.paths.checkpoint: torch_bytes(run.checkpoint()),
                 self.paths.metrics: json_bytes(metrics_record(run, "running"))}
        if loop.best_validation_epoch(run.history) is record:
            files[self.paths.best_params] = torch_bytes(run.model.state_dict())
        atomic_write_many(files)
        self.epochs_saved = record.epoch
        self._log_epochs(run)

    def interrupted(self, finishing: bool = False) -> Interrupted:
        """Mark the record of the finished epochs; with none finished, touch nothing."""
        if self.run is not None and self.epochs_saved and not finishing:
            atomic_save_json(self.paths.metrics, metrics_record(self.run, "interrupted"))
        if self.events is not None:
            self.events.close()
        return Interrupted(self.epochs_saved, self.paths.checkpoint, finishing)

    def diverged(self, error: loop.DivergenceError) -> None:
        """Record the divergence; the final weights of earlier runs stay untouched."""
        if self.run is not None:
            atomic_save_json(self.paths.metrics, {**metrics_record(self.run, "diverged"), "error": str(error)})
        if self.events is not None:
            self.events.close()

    def finish(self, run: loop.Run) -> dict:
        """The final files: params, metrics with the evaluation and summary as one step, then the figures
        (a figure that cannot be written loses nothing written before it)."""
        record = metrics_record(run, "complete")
        result, mistakes = evaluate(run.model, run.pipeline.test, record)
        atomic_write_many({
            self.paths.params: torch_bytes(run.model.state_dict()),
            self.paths.safetensors: safetensors_bytes(run.model.state_dict()),
            self.paths.metrics: json_bytes(record),
            self.paths.summary: architecture_summary(run.strategy, self.cfg.knobs).encode()})
        visualization.save_training_plot(
            record["history"], self.paths.plot, f"{run.strategy.stem} ({record['summary']['params']:,} params):"
            f" final test accuracy {run.history.epochs[-1].test_acc:.2f}%")
        save_figures(run.model, run.strategy, result, mistakes, self.paths)
        if self.events is not None:
            self._log_epochs(run)
            self.events.finish(run.cfg, record["summary"], {"confusion": self.paths.confusion_plot,
                                                            "mistakes": self.paths.mistakes_plot})
        return record


def train_and_save(cfg: RunConfig, resume: bool = False, started_at: float | None = None, events: bool = True) -> dict:
    """Train one model and write its files; returns the metrics record.

    A checkpoint is written after every epoch; ``resume`` continues from it and ends with the same
    weights and history as an uninterrupted run. Raises ``Interrupted`` on Ctrl-C or SIGTERM,
    ``loop.DivergenceError`` (each after recording it) and ``RunWriteError`` when a file cannot be
    written, leaving the files of the last good epoch as they were. ``events``: TensorBoard events too.
    """
    writer = RunWriter(cfg, events, resume)
    state = writer.load_checkpoint() if resume else None
    try:
        try:
            run = loop.train(cfg, writer, state, started_at)
        except KeyboardInterrupt:
            raise writer.interrupted() from None
        except loop.DivergenceError as exc:
            writer.diverged(exc)
            raise
        except loop.CheckpointMismatch as exc:
            raise ConfigError("resume", f"{writer.paths.checkpoint}: {exc}") from None
        try:
            return writer.finish(run)
        except KeyboardInterrupt:
            raise writer.interrupted(finishing=True) from None
    except WriteError as exc:
        if writer.events is not None:
            writer.events.close()
        raise RunWriteError(exc, writer.epochs_saved, writer.paths.checkpoint) from None


def train_together_and_save(cfgs: list[RunConfig], started_at: float | None = None, events: bool = True) -> list[dict]:
    """Train the seeds of ``cfgs`` at once (``seeds_at_once``), then write each seed's files as its own
    run's; returns their metrics records. There are no per-epoch checkpoints: an interrupt or a
    divergence loses the epochs so far and leaves every file written before untouched."""
    writers = [RunWriter(cfg, events) for cfg in cfgs]
    try:
        try:
            trained = seeds_at_once.train_together(cfgs, started_at)
        except KeyboardInterrupt:
            raise Interrupted(0, None) from None
        records = []
        for writer, run in zip(writers, trained):
            writer.on_start(run)
            records.append(writer.finish(run))
        return records
    except WriteError as exc:
        raise RunWriteError(exc, 0, writers[0].paths.checkpoint) from None


def evaluate(model: torch.nn.Module, test_batches, metrics: dict) -> tuple:  # noqa: ANN001
    """Per-class scores and the confusion matrix on the test set, into ``metrics`` and printed."""
    result, mistakes = evaluation.evaluate_model(model, test_batches)
    metrics["evaluation"] = result.to_dict()
    print(evaluation.format_report(result))
    return result, mistakes


def save_figures(model: torch.nn.Module, strategy: model_strategy.ModelStrategy, result: evaluation.Evaluation,
                 mistakes: list, paths: ArtifactPaths) -> None:
    """The confusion matrix, the most confident mistakes and the first layer's filters."""
    name = f"{strategy.stem} ({model_strategy.param_count(model):,} params)"
    visualization.save_confusion_plot(result.confusion, paths.confusion_plot,
                                      f"{name}: test accuracy {result.accuracy:.2f}%")
    saliencies = [inspection.saliency(model, m.image)[0] for m in mistakes[:5]]
    visualization.save_mistakes_plot(mistakes, paths.mistakes_plot, f"{name}: the {len(mistakes)} most confident mistakes",
                                     saliencies)
    visualization.save_filters_plot(model, paths.filters_plot, f"{name}: first convolution's kernels")
