"""A run, recorded: the one writer of a run's files, and the library calls behind the CLI's modes.

``RunWriter`` is ``training.train``'s callback: after every epoch the checkpoint, the running metrics
and (with a validation split) the selected epoch's params; on an interrupt or a divergence the metrics
marked so; at the end the params, evaluation, summary and figures. ``train_and_save`` and
``evaluate_saved`` are what ``python main.py`` and ``--evaluate`` do, callable from Python.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict

import torch

import acceleration
import config
import data_utils
import evaluation
import model_strategy
import provenance
import training
import visualization
from artifacts import ArtifactPaths, atomic_save_json, atomic_torch_save
from config import ConfigError, RunConfig


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training; ``epochs_done`` finished epochs are in the checkpoint."""

    def __init__(self, epochs_done: int, checkpoint) -> None:  # noqa: ANN001
        super().__init__(epochs_done, checkpoint)
        self.epochs_done, self.checkpoint = epochs_done, checkpoint


def metrics_record(run: training.Run, status: str) -> dict:
    """The metrics JSON: config, environment, data, history and a summary; ``status`` says how far it got.

    status: ``running`` (written after every epoch), ``complete``, ``interrupted`` or ``diverged``.
    """
    cfg, history, epochs = run.cfg, run.history, run.history.epochs
    best_test = max(epochs, key=lambda e: e.test_acc) if epochs else None
    best_val = training.best_validation_epoch(history)
    paths = ArtifactPaths(run.strategy.stem, cfg.out_dir)
    return {
        "status": status,
        "config": cfg.to_dict(),
        "environment": provenance.environment(cfg.device, cfg.backend, run.graphed if cfg.cuda_graph is not None
                                              else None),
        "data": {"train_images": run.pipeline.num_train, "val_images": run.pipeline.num_val,
                 "test_images": run.pipeline.num_test},
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
        },
    }


class RunWriter:
    """Everything a run writes, and when; nothing else writes a run's files."""

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.paths = ArtifactPaths(model_strategy.get_strategy(cfg.model).stem, cfg.out_dir)
        self.run: training.Run | None = None
        self.epochs_saved = 0  # epochs held by the checkpoint on disk

    def load_checkpoint(self) -> dict:
        """The checkpoint to resume from, refused when it is missing, unreadable or from other settings."""
        path = self.paths.checkpoint
        if not path.is_file():
            raise ConfigError("resume", f"no checkpoint at {path} (train without --resume first)")
        try:
            state = torch.load(path, map_location=self.cfg.device, weights_only=True)
            saved = state["config"]
        except Exception as exc:  # truncated, foreign or tampered files all end here
            raise ConfigError("resume", f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
        changed = config.resume_conflicts(saved, self.cfg)
        if changed:
            wanted = asdict(self.cfg)
            diffs = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)} (now {wanted[k]})" for k in changed)
            raise ConfigError("resume", f"{path} was written with {diffs}; give the same flags to resume")
        self.epochs_saved = len(state["history"]["epochs"])
        return state

    def on_start(self, run: training.Run) -> None:
        self.run = run

    def on_epoch_end(self, run: training.Run, record: training.EpochRecord) -> None:
        atomic_torch_save(run.checkpoint(), self.paths.checkpoint)
        self.epochs_saved = record.epoch
        if training.best_validation_epoch(run.history) is record:
            atomic_torch_save(run.model.state_dict(), self.paths.best_params)
        atomic_save_json(self.paths.metrics, metrics_record(run, "running"))

    def interrupted(self) -> Interrupted:
        """Mark the record of the finished epochs; with none finished, touch nothing."""
        if self.run is not None and self.epochs_saved:
            atomic_save_json(self.paths.metrics, metrics_record(self.run, "interrupted"))
        return Interrupted(self.epochs_saved, self.paths.checkpoint)

    def diverged(self, error: training.DivergenceError) -> None:
        """Record the divergence; the final weights of earlier runs stay untouched."""
        if self.run is not None:
            atomic_save_json(self.paths.metrics, {**metrics_record(self.run, "diverged"), "error": str(error)})

    def finish(self, run: training.Run) -> dict:
        """The final files: params, metrics with the evaluation, summary, training plot and figures."""
        record = metrics_record(run, "complete")
        atomic_torch_save(run.model.state_dict(), self.paths.params)
        write_evaluation(run.model, run.strategy, run.pipeline.test, self.paths, record)
        visualization.save_summary(run.model, self.paths.summary, run.strategy.title(run.model))
        visualization.save_training_plot(
            record["history"], self.paths.plot, f"{run.strategy.stem} ({record['summary']['params']:,} params):"
            f" final test accuracy {run.history.epochs[-1].test_acc:.2f}%")
        return record


def train_and_save(cfg: RunConfig, resume: bool = False, started_at: float | None = None) -> dict:
    """Train one model and write its files; returns the metrics record.

    A checkpoint is written after every epoch; ``resume`` continues from it and ends with the same
    weights and history as an uninterrupted run. Raises ``Interrupted`` on Ctrl-C or SIGTERM and
    ``training.DivergenceError``, each after recording it.
    """
    writer = RunWriter(cfg)
    state = writer.load_checkpoint() if resume else None
    try:
        run = training.train(cfg, writer, state, started_at)
    except KeyboardInterrupt:
        raise writer.interrupted() from None
    except training.DivergenceError as exc:
        writer.diverged(exc)
        raise
    return writer.finish(run)


def write_evaluation(model: torch.nn.Module, strategy: model_strategy.ModelStrategy, test_batches,  # noqa: ANN001
                     paths: ArtifactPaths, metrics: dict) -> dict:
    """Per-class scores and the confusion matrix into the metrics JSON, printed too, and the three figures."""
    result, mistakes = evaluation.evaluate_model(model, test_batches)
    metrics["evaluation"] = result.to_dict()
    atomic_save_json(paths.metrics, metrics)
    print(evaluation.format_report(result))
    name = f"{strategy.stem} ({model_strategy.param_count(model):,} params)"
    visualization.save_confusion_plot(result.confusion, paths.confusion_plot,
                                      f"{name}: test accuracy {result.accuracy:.2f}%")
    visualization.save_mistakes_plot(mistakes, paths.mistakes_plot, f"{name}: the {len(mistakes)} most confident mistakes")
    visualization.save_filters_plot(model, paths.filters_plot, f"{name}: first convolution's kernels")
    return metrics


def evaluate_saved(cfg: RunConfig) -> dict:
    """``--evaluate``: the saved model on the test set, run as it trained (same backend), nothing trained."""
    strategy = model_strategy.get_strategy(cfg.model)
    paths = ArtifactPaths(strategy.stem, cfg.out_dir)
    model = model_strategy.load_trained(strategy.key, cfg.out_dir, cfg.device)
    model, _ = acceleration.accelerate(model, cfg.backend)
    splits = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)
    pipeline = data_utils.build_pipeline(splits, cfg.loader, cfg.batch_size, cfg.seed, cfg.device)
    try:
        metrics = json.loads(paths.metrics.read_text())
    except (OSError, ValueError):
        metrics = {"config": cfg.to_dict()}  # weights without a (readable) record of their training
    return write_evaluation(model.eval(), strategy, pipeline.test, paths, metrics)
