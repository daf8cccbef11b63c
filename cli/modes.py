"""What each mode of the command line does: one library call and the lines it prints.

``main.py`` parses the command line into a ``Command`` and runs ``MODES[command.mode]``; a mode
returns an exit code, or None for success. Errors are the library's own types; ``main.py`` words them.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import config
import model_strategy
import visualization
import zoo
from analysis import rejection
from core import artifacts
from core.artifacts import ArtifactPaths
from deploy import reading
from training import sweep
from web import server


@dataclass
class Command:
    mode: str
    args: argparse.Namespace
    keys: list[str]
    given: dict  # the settings given on the command line (None: not given)
    cfgs: list[config.RunConfig]  # one per model (first seed); empty for modes that need none
    source: Path | None = None  # the trained model a reading mode reads (``cli.places``)


def _source(cmd: Command, doing: str) -> Path:
    """Where the trained model is read from (``cli.places``), said on the console."""
    print(f"{doing} the params under {cmd.source}")
    return cmd.source


def summary(cmd: Command) -> None:
    strategy = model_strategy.get_strategy(cmd.keys[0])
    knobs = {k: v for k, v in cmd.given.items() if k in config.KNOBS and v is not None}
    config.check_knobs(strategy.key, knobs)
    model, path = strategy.get_model("cpu", knobs), ArtifactPaths(strategy.stem, cmd.args.out_dir).summary
    print(f"wrote {visualization.save_summary(model, path, strategy.title(model, knobs))}")


def train(cmd: Command) -> None:
    cfg = cmd.cfgs[0]
    result = zoo.train_run(cfg, resume=cmd.args.resume, events=cmd.args.tensorboard)["summary"]
    paths = ArtifactPaths(model_strategy.get_strategy(cfg.model).stem, cfg.out_dir)
    stopped = result["stopped_early_after_epoch"]
    epochs = result["epochs_run"]
    print(f"final test accuracy {result['final_test_acc']:.2f}% after {epochs} epoch{'' if epochs == 1 else 's'}"
          + (f" (stopped early: no better validation accuracy in {cfg.patience} epochs)" if stopped else ""))
    if result["selected_on_validation"]:
        chosen = result["selected_on_validation"]
        print(f"validation selected epoch {chosen['epoch']} (validation {chosen['val_acc']:.2f}%, test"
              f" {chosen['test_acc']:.2f}%); its params: {paths.best_params}")
    print(f"wrote the run to {paths.base}: outputs/{paths.params.name}, outputs/{paths.metrics.name},"
          f" summaries/{paths.summary.name}, plots/{paths.stem}*.png")


def evaluate(cmd: Command) -> None:
    zoo.evaluate_saved(cmd.cfgs[0], _source(cmd, "evaluating"))


def run_export(cmd: Command) -> None:
    r = zoo.export_saved(cmd.cfgs[0], cmd.args.export, _source(cmd, "exporting"))
    print(f"wrote {r.path} ({r.size_bytes:,} bytes): test accuracy {r.export_test_acc:.2f}%"
          f" ({cmd.args.export}, onnxruntime) vs {r.torch_test_acc:.2f}% (PyTorch); same digit on"
          f" {100 * r.same_prediction:.2f}% of the test set, logits within {r.max_logit_diff:.2g}")


def run_predict(cmd: Command) -> int:
    failed = zoo.predict_saved(cmd.cfgs[0], cmd.args.predict, cmd.args.predict_csv, cmd.args.best,
                               cmd.args.save_prepared, cmd.args.format, cmd.source, cmd.args.reject_below,
                               cmd.keys if len(cmd.keys) > 1 else None, getattr(cmd.args, "members_from", None))
    return 1 if failed else 0


def run_inspect(cmd: Command) -> None:
    print("wrote " + ", ".join(map(str, zoo.inspect_saved(cmd.cfgs[0], cmd.args.inspect, _source(cmd, "inspecting")))))


def calibrate(cmd: Command) -> None:
    record = zoo.calibrate_saved(cmd.cfgs[0], _source(cmd, "calibrating"))
    print(f"temperature {record['temperature']:.3f}, fitted on " + ", ".join(f"{n} ({k:,})" for n, k in
                                                                              record["fitted_on"].items()))
    for s in record["sets"]:
        print(f"  {s['before']['name']}: expected calibration error {s['before']['ece']:.2f}% -> {s['after']['ece']:.2f}%")
    paths = ArtifactPaths(model_strategy.get_strategy(cmd.keys[0]).stem, cmd.cfgs[0].out_dir)
    print(f"wrote {paths.calibration} and {paths.reliability_plot}")


def evaluate_reading(cmd: Command) -> None:
    if (left_out := rejection.without_handwriting_fonts()) is not None:
        print(f"--evaluate-reading: {left_out}", file=sys.stderr)
    r = zoo.evaluate_reading_saved(cmd.cfgs[0], _source(cmd, "reading with"))
    print(f"MNIST test: {r['mnist_accuracy']:.2f}% (ECE {r['ece_mnist']:.2f}); read as files at the threshold"
          f" {r['threshold']:.3f}: {r['mnist_rejected']:.2f}% rejected, {reading.accepted_read_right(r)} of the"
          " rest read right")
    if "semeion_rejected" in r:
        print(f"SEMEION (other writers): {r['semeion_accuracy']:.2f}% (ECE {r['ece_semeion']:.2f}),"
              f" {r['semeion_rejected']:.2f}% rejected")
    print(f"test non-digits rejected: {r['non_digits_rejected']:.1f}% ("
          + ", ".join(f"{k} {v:.1f}%" for k, v in r["non_digits"].items()) + f"); AUROC {r['auroc']:.4f}")
    print("numbers read exactly: " + ", ".join(f"{n['length']} digit{'s' if n['length'] > 1 else ''} {n['kind']}"
                                               f" {n['exact']:.1f}%" for n in r["numbers"]))
    print(f"wrote {ArtifactPaths(model_strategy.get_strategy(cmd.keys[0]).stem, cmd.cfgs[0].out_dir).metrics}"
          " (\"reading\")")


def evaluate_external(cmd: Command) -> None:
    zoo.evaluate_external_saved(cmd.cfgs[0], _source(cmd, "evaluating"))


def list_runs(cmd: Command) -> None:
    found = zoo.list_runs(cmd.keys)
    if not found:
        print(f"no runs under {artifacts.RUNS_ROOT} yet: train one with main.py --model 3")
        return
    rows = [("model", "run", "written", "status", "final test acc.", "epochs", "differs from the recipe")]
    for r in found:
        where = r.folder.resolve().relative_to(artifacts.RUNS_ROOT.resolve()).as_posix()
        rows.append((r.model + (" *" if r.latest else ""), where if where != "." else "(runs/ itself)",
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(r.written)), r.status,
                     "-" if r.final_test_acc is None else f"{r.final_test_acc:.2f}%", str(r.epochs_run or "-"),
                     " ".join(f"--{k.replace('_', '-')} {v}" for k, v in r.differs.items()) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + "  " + row[6])
    print(f"under {artifacts.RUNS_ROOT}; * the run --predict, --evaluate, --export, --inspect and --serve read"
          " (the latest); --name picks another")


def run_sweep(cmd: Command) -> None:
    spec = cmd.args.sweep_spec
    print(f"sweep {spec.name}: model {spec.model}, sampler {spec.sampler}, seeds {', '.join(map(str, spec.seeds))};"
          f" study at {sweep.masked(spec.url)}")
    found = sweep.run(spec, config.resolve_device(cmd.args.device),
                      {"data_dir": cmd.args.data_dir, "verify": cmd.args.verify}, cmd.args.tensorboard)
    print(sweep.table(found), end="")
    print(f"wrote {spec.folder / 'results.md'}, results.json and results.png")


def serve(cmd: Command) -> None:
    server.serve(cmd.keys, cmd.args.out_dir, cmd.args.host, cmd.args.port)


MODES = {
    "list": lambda cmd: print(model_strategy.table()),
    "summary": summary,
    "train": train,
    "leaderboard": lambda cmd: print("wrote " + ", ".join(map(str, zoo.leaderboard(
        cmd.keys, cmd.args.seeds, cmd.given, cmd.cfgs[0].device, cmd.args.seeds_at_once, cmd.args.jobs,
        cmd.args.tensorboard)))),
    "evaluate": evaluate,
    "predict": run_predict,
    "export": run_export,
    "inspect": run_inspect,
    "external": evaluate_external,
    "reading": evaluate_reading,
    "serve": serve,
    "runs": list_runs,
    "calibrate": calibrate,
    "sweep": run_sweep,
}
