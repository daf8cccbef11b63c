"""Train an MNIST model of the zoo from one command.

    python main.py --model 3 --scheduler onecycle --epochs 15

Every default comes from the chosen model's recipe (``model_strategy.py``); a flag overrides it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Callable

PROCESS_START = time.perf_counter()

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import acceleration  # noqa: E402
import data_utils  # noqa: E402
import evaluation  # noqa: E402
import lr_schedulers  # noqa: E402
import model_strategy  # noqa: E402
import predict  # noqa: E402
import training  # noqa: E402
import visualization  # noqa: E402
from artifacts import ArtifactPaths, atomic_save_json, atomic_torch_save, atomic_write_text  # noqa: E402
from config import RunConfig  # noqa: E402

training.keep_freed_memory()

MAX_EPOCHS = 1000
DEVICES = ("auto", "cpu", "cuda", "mps")


class UsageError(Exception):
    """A bad value found after parsing; reported argparse-style with exit code 2."""


# --------------------------------------------------------------------------- argument types


def _number(kind, name: str, low: float, low_inclusive: bool, high: float = math.inf, high_inclusive: bool = True):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        above = value >= low if low_inclusive else value > low
        below = value <= high if high_inclusive else value < high
        if not (above and below):
            lo, hi = ("[" if low_inclusive else "("), ("]" if high_inclusive else ")")
            raise argparse.ArgumentTypeError(f"{text} is outside {lo}{low:g}, {high:g}{hi}")
        return value
    parse.__name__ = name
    return parse


positive_int = _number(int, "positive integer", 1, True)
non_negative_int = _number(int, "non-negative integer", 0, True)
positive_float = _number(float, "positive number", 0, False)
non_negative_float = _number(float, "non-negative number", 0, True)
unit_interval = _number(float, "number in [0, 1)", 0, True, 1, False)
epochs_type = _number(int, "epoch count", 1, True, MAX_EPOCHS, True)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default to its help, unless the help states it already or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default:" in text or action.default is None:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    schedulers = lr_schedulers.available_schedulers()
    p = argparse.ArgumentParser(
        prog="main.py",
        description="Train a model of the MNIST zoo. Defaults marked 'recipe' come from the chosen model.",
        formatter_class=HelpFormatter)
    p.add_argument("--model", default="3",
                   help="model key or alias (see --list-models); 'all' or a comma list trains a leaderboard")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="train each model with seeds --seed, --seed+1, ... and write the leaderboard")
    p.add_argument("--scheduler", default=None, choices=schedulers, help="learning-rate schedule (default: recipe)")
    p.add_argument("--epochs", type=epochs_type, default=None, help=f"epochs, 1-{MAX_EPOCHS} (default: recipe)")
    p.add_argument("--max_lr", "--max-lr", dest="max_lr", type=positive_float, default=None,
                   help="OneCycle peak learning rate (default: recipe, 0.75 for SGD)")
    p.add_argument("--optimizer", default=None, choices=list(training.OPTIMIZERS), help="optimizer (default: recipe)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate for step/plateau/cosine/none (default: recipe)")
    p.add_argument("--momentum", type=unit_interval, default=None, help="SGD momentum (default: recipe)")
    p.add_argument("--weight-decay", type=non_negative_float, default=None, help="weight decay (default: recipe)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="training batch size (default: recipe)")
    p.add_argument("--label-smoothing", type=unit_interval, default=None, help="label smoothing (default: recipe)")
    p.add_argument("--seed", type=non_negative_int, default=1, help="seed for weights, shuffling, augmentation")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto picks cuda, then mps, then cpu")
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="on CUDA, replay each full batch's training step from a CUDA graph (SGD, Adam, AdamW)")
    p.add_argument("--backend", default="auto", choices=acceleration.BACKENDS,
                   help="how the model runs fast, the same network either way: native (C kernels, CPU), torch"
                        " (the same fusion from PyTorch ops), channels-last, none (as built: the classic pipeline);"
                        " auto: native where it builds, else torch, on a GPU channels-last")
    p.add_argument("--data-dir", default=str(data_utils.default_data_dir()),
                   help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--loader", default="tensor", choices=list(data_utils.LOADERS),
                   help="tensor: batches made on the device; torchvision: classic Dataset + DataLoader")
    p.add_argument("--subset", type=positive_int, default=None, help="train on the first N training images")
    p.add_argument("--val-split", type=non_negative_int, default=0,
                   help="hold out N training images (seeded) as a validation set")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="stop after K epochs without a higher validation accuracy (needs --val-split)")
    p.add_argument("--out-dir", default=None,
                   help="root for outputs/, plots/, summaries/ (default: this repository)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="accept IDX files whose MD5 is not MNIST's (format checks still apply)")
    p.add_argument("--evaluate", action="store_true",
                   help="no training: load the saved params under --out-dir and write per-class scores, the"
                        " confusion matrix and the mistakes and filters plots")
    p.add_argument("--predict", nargs="+", metavar="IMG", default=None,
                   help="no training: print the saved model's digit and probability for each image file")
    p.add_argument("--predict-csv", metavar="FILE", default=None,
                   help="no training: classify Kaggle digit-recognizer rows, write outputs/<stem>_submission.csv")
    p.add_argument("--resume", action="store_true",
                   help="continue from outputs/<stem>_checkpoint.pt under --out-dir (give the same flags)")
    p.add_argument("--list-models", action="store_true", help="print the models table and exit")
    p.add_argument("--summary-only", action="store_true", help="write the model's torchsummary text and exit")
    return p


# --------------------------------------------------------------------------- resolving the config


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}
    if not available[name]:
        raise UsageError(f"argument --device: {name} is not available on this machine")
    return torch.device(name)


def resolve_config(args: argparse.Namespace, strategy: model_strategy.ModelStrategy) -> RunConfig:
    """Flags win; else the model's recipe; rates of an optimizer the recipe does not use come from its spec."""
    recipe = strategy.recipe
    optimizer = args.optimizer or recipe.optimizer
    rates = recipe if optimizer == recipe.optimizer else training.OPTIMIZERS[optimizer]

    def pick(flag, default):
        return default if flag is None else flag

    return RunConfig(
        model=strategy.key, scheduler=pick(args.scheduler, recipe.scheduler), epochs=pick(args.epochs, recipe.epochs),
        optimizer=optimizer, lr=pick(args.lr, rates.lr), max_lr=pick(args.max_lr, rates.max_lr),
        momentum=pick(args.momentum, recipe.momentum), weight_decay=pick(args.weight_decay, recipe.weight_decay),
        batch_size=pick(args.batch_size, recipe.batch_size),
        label_smoothing=pick(args.label_smoothing, recipe.label_smoothing), seed=args.seed,
        device=str(resolve_device(args.device)), data_dir=args.data_dir, loader=args.loader, subset=args.subset,
        val_split=args.val_split, out_dir=args.out_dir, patience=args.patience, verify=args.verify,
        cuda_graph=args.cuda_graph, backend=acceleration.resolve(args.backend, resolve_device(args.device)))


def check_patience(cfg: RunConfig) -> None:
    if cfg.patience is not None and cfg.val_split == 0:
        raise UsageError("argument --patience: needs --val-split N > 0 (it watches validation accuracy)")


def check_sizes(cfg: RunConfig, num_train_images: int) -> None:
    if cfg.subset is not None and cfg.subset > num_train_images:
        raise UsageError(f"argument --subset: {cfg.subset} is more than the {num_train_images} training images")
    available = cfg.subset or num_train_images
    if cfg.val_split >= available:
        raise UsageError(f"argument --val-split: holding out {cfg.val_split} of {available} images leaves none to train on")


def check_writable(out_dir: str | None) -> None:
    base = ArtifactPaths("x", out_dir).base
    probe = base
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK) or (probe.exists() and not probe.is_dir()):
        raise UsageError(f"argument --out-dir: {base} is not a writable directory")


# --------------------------------------------------------------------------- the run


def metrics_record(cfg: RunConfig, strategy, history: training.History, total_seconds: float,
                   num_params: int, pipeline, status: str, paths: ArtifactPaths) -> dict:
    """The metrics JSON: config, environment, data, history and a summary; ``status`` says how far the run got.

    status: ``running`` (written after every epoch), ``complete``, ``interrupted`` or ``diverged``.
    """
    epochs = history.epochs
    best_test = max(epochs, key=lambda e: e.test_acc) if epochs else None
    best_val = training.best_validation_epoch(history)
    stopped_early = status == "complete" and len(epochs) < cfg.epochs
    return {
        "status": status,
        "config": cfg.to_dict(),
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "platform": platform.platform(), "cpu_threads": torch.get_num_threads()},
        "data": {"train_images": pipeline.num_train, "val_images": pipeline.num_val, "test_images": pipeline.num_test},
        "history": history.to_dict(),
        "summary": {
            "model": strategy.key, "params": num_params, "epochs_run": len(epochs),
            "final_test_acc": epochs[-1].test_acc if epochs else None,
            "selected_on_validation": None if best_val is None else {
                "epoch": best_val.epoch, "val_acc": best_val.val_acc, "test_acc": best_val.test_acc,
                "params_file": paths.best_params.name,
                "note": "epoch chosen on the held-out validation split; its test accuracy is a fair estimate"},
            "stopped_early_after_epoch": epochs[-1].epoch if stopped_early else None,
            "best_test_acc_selected_on_test": None if best_test is None else {
                "acc": best_test.test_acc, "epoch": best_test.epoch,
                "note": "chosen on the test set itself: optimistic, not a result"},
            "train_seconds": sum(e.seconds for e in epochs), "total_seconds": total_seconds,
        },
    }


# Settings a resumed run may change: where things are, and which device runs them.
RESUMABLE_CHANGES = {"data_dir", "out_dir", "device", "cuda_graph"}


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training; ``epochs_done`` finished epochs are in the checkpoint."""

    def __init__(self, epochs_done: int, checkpoint) -> None:
        super().__init__(epochs_done, checkpoint)
        self.epochs_done, self.checkpoint = epochs_done, checkpoint


def load_checkpoint(path, cfg: RunConfig) -> dict:
    if not path.is_file():
        raise UsageError(f"argument --resume: no checkpoint at {path} (train without --resume first)")
    try:
        state = torch.load(path, map_location=cfg.device, weights_only=True)
        saved = state["config"]
    except Exception as exc:  # truncated, foreign or tampered files all end here
        raise UsageError(f"argument --resume: {path} is not a readable checkpoint ({type(exc).__name__})") from None
    wanted = cfg.to_dict()
    changed = sorted(k for k in wanted.keys() - RESUMABLE_CHANGES if saved.get(k) != wanted[k])
    if changed:
        diffs = ", ".join(f"--{k.replace('_', '-')} {saved.get(k)} (now {wanted[k]})" for k in changed)
        raise UsageError(f"argument --resume: {path} was written with {diffs}; give the same flags to resume")
    return state


def run(cfg: RunConfig, resume: bool = False) -> dict:
    """Train one model and write its four artifacts; returns the metrics record.

    A checkpoint is written after every epoch; ``resume`` continues from it and ends with the same
    weights and history as an uninterrupted run. ``prepare_model`` may swap the model's ops before
    training (the benchmark's reference ops).
    """
    check_patience(cfg)
    strategy = model_strategy.get_strategy(cfg.model)
    torch.manual_seed(cfg.seed)
    model, backend = acceleration.accelerate(strategy.get_model(cfg.device), cfg.backend)
    splits = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)
    check_sizes(cfg, len(splits["train"]))
    pipeline = data_utils.build_pipeline(splits, cfg.loader, cfg.batch_size, cfg.seed, cfg.device,
                                         cfg.subset, cfg.val_split)
    graphed = (torch.device(cfg.device).type == "cuda" and cfg.cuda_graph
               and training.OPTIMIZERS[cfg.optimizer].graph_safe is not None)
    optimizer = training.build_optimizer(cfg.optimizer, model, cfg.lr, cfg.momentum, cfg.weight_decay, graphed)
    schedule = lr_schedulers.get_scheduler(cfg.scheduler).build(
        optimizer, lr_schedulers.ScheduleContext(cfg.epochs, len(pipeline.train), cfg.max_lr))
    paths = ArtifactPaths(strategy.stem, cfg.out_dir)
    history = (training.restore(load_checkpoint(paths.checkpoint, cfg), model, optimizer, schedule) if resume
               else training.History())
    saved = [len(history.epochs)]  # epochs held by the checkpoint on disk
    num_params = model_strategy.param_count(model)

    def record_run(status: str, **extra) -> None:
        atomic_save_json(paths.metrics, {**metrics_record(cfg, strategy, history, time.perf_counter() - PROCESS_START,
                                                          num_params, pipeline, status, paths), **extra})

    def end_of_epoch(record: training.EpochRecord, history: training.History) -> None:
        atomic_torch_save(training.checkpoint_state(model, optimizer, schedule, history, cfg.to_dict()),
                          paths.checkpoint)
        saved[0] = record.epoch
        if training.best_validation_epoch(history) is record:
            atomic_torch_save(model.state_dict(), paths.best_params)
        record_run("running")
        val = f", val {record.val_acc:.2f}%" if record.val_acc is not None else ""
        tqdm.write(f"epoch {record.epoch:>3}: train loss {record.train_loss:.4f}, acc {record.train_acc:.2f}%"
                   f" | test loss {record.test_loss:.4f}, acc {record.test_acc:.2f}%{val}"
                   f" | lr {record.lr:.4g} | {record.seconds:.1f}s, {record.images_per_sec:,.0f} img/s")

    stopper = training.EarlyStopping(cfg.patience) if cfg.patience else None
    step = (training.CudaGraphStep if graphed else training.TrainStep)(model, optimizer, cfg.label_smoothing)
    try:
        training.fit(model, pipeline, optimizer, schedule, cfg.epochs, cfg.label_smoothing, end_of_epoch,
                     started_at=PROCESS_START, history=history, stopper=stopper, step=step)
    except KeyboardInterrupt:
        if saved[0]:  # keep the record of the finished epochs, marked; no epoch finished: touch nothing
            record_run("interrupted")
        raise Interrupted(saved[0], paths.checkpoint) from None
    except training.DivergenceError as exc:
        record_run("diverged", error=str(exc))  # the final weights of earlier runs stay untouched
        raise

    record = metrics_record(cfg, strategy, history, time.perf_counter() - PROCESS_START, num_params, pipeline,
                            "complete", paths)
    title = summary_title(strategy, model)
    atomic_torch_save(model.state_dict(), paths.params)
    write_evaluation(model, strategy, pipeline.test, paths, record)
    visualization.save_summary(model, paths.summary, title)
    visualization.save_training_plot(
        record["history"], paths.plot,
        f"{strategy.stem} ({num_params:,} params): final test accuracy {history.epochs[-1].test_acc:.2f}%")
    print(f"final test accuracy {history.epochs[-1].test_acc:.2f}% after {cfg.epochs} epochs;"
          f" wrote {paths.params}, {paths.metrics}, {paths.summary} and plots/{strategy.stem}*.png under {paths.base}")
    return record


def write_evaluation(model: torch.nn.Module, strategy: model_strategy.ModelStrategy, test_batches,
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
    """``--evaluate``: the saved model on the test set, nothing trained; updates its metrics JSON."""
    strategy = model_strategy.get_strategy(cfg.model)
    paths = ArtifactPaths(strategy.stem, cfg.out_dir)
    model = model_strategy.load_trained(strategy.key, cfg.out_dir, cfg.device)
    splits = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)
    pipeline = data_utils.build_pipeline(splits, cfg.loader, cfg.batch_size, cfg.seed, cfg.device)
    try:
        metrics = json.loads(paths.metrics.read_text())
    except (OSError, ValueError):
        metrics = {"config": cfg.to_dict()}  # weights without a (readable) record of their training
    return write_evaluation(model, strategy, pipeline.test, paths, metrics)


def predict_saved(cfg: RunConfig, images: list[str] | None, csv_file: str | None) -> None:
    """``--predict`` / ``--predict-csv``: the saved model on new digits, nothing trained."""
    strategy = model_strategy.get_strategy(cfg.model)
    model = model_strategy.load_trained(strategy.key, cfg.out_dir, cfg.device)
    if images:
        for p in predict.predict_images(model, [Path(x) for x in images]):
            print(f"{p.source}: {p.digit} ({100 * p.probability:.1f}%)")
    if csv_file:
        pixels, labels = predict.read_kaggle_csv(Path(csv_file))
        digits, _ = predict.classify(model, pixels.float() / 255.0)
        path = ArtifactPaths(strategy.stem, cfg.out_dir).submission
        atomic_write_text(path, predict.submission_csv(digits))
        scored = f"; accuracy on its labels {100 * float((digits == labels).float().mean()):.2f}%" if labels is not None else ""
        print(f"wrote {path} ({len(digits)} rows){scored}")


def model_keys(text: str) -> list[str]:
    """``all``, one key or alias, or a comma list, as canonical keys (unknown ones raise ValueError)."""
    if text.strip().lower() == "all":
        return model_strategy.available_models()
    keys = [model_strategy.get_strategy(part).key for part in text.split(",") if part.strip()]
    if not keys:
        raise ValueError(f"no model in {text!r}")
    return list(dict.fromkeys(keys))


def run_leaderboard(args: argparse.Namespace, keys: list[str]) -> list[Path]:
    """Each model with ``--seeds`` seeds; the first seed's run writes the usual artifacts, the others' are
    kept only in the leaderboard. The leaderboard is rewritten after every model, so progress survives."""
    import tempfile
    from dataclasses import replace

    import leaderboard

    entries = []
    with tempfile.TemporaryDirectory() as scratch:
        for key in keys:
            runs, files = [], []
            stem = model_strategy.get_strategy(key).stem
            for offset in range(args.seeds):
                cfg = resolve_config(argparse.Namespace(**{**vars(args), "model": key, "seed": args.seed + offset}),
                                     model_strategy.get_strategy(key))
                runs.append(run(cfg if offset == 0 else replace(cfg, out_dir=scratch)))
                kept = ArtifactPaths(f"{stem}_seed{cfg.seed}", args.out_dir).metrics  # every seed's whole record
                atomic_save_json(kept, runs[-1])
                files.append(str(kept.relative_to(kept.parents[1])))
            entries.append(leaderboard.entry_from_runs(key, runs, files))
            paths = leaderboard.write(entries, args.out_dir)
    print(f"wrote {', '.join(map(str, paths))}")
    return paths


def summary_title(strategy: model_strategy.ModelStrategy, model: torch.nn.Module) -> str:
    return f"{strategy.stem}: {strategy.description} ({model_strategy.param_count(model):,} params)"


def list_models() -> str:
    rows = [("key", "aliases", "params", "description")]
    for key in model_strategy.available_models():
        s = model_strategy.get_strategy(key)
        rows.append((key, ",".join(s.aliases) or "-", f"{s.num_params():,}", s.description))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows)


def _terminate(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: no half step reaches the saved files


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.list_models:
        print(list_models())
        return 0
    try:
        keys = model_keys(args.model)
    except ValueError as exc:  # unknown names raise ValueError from the registry, listing the valid ones
        parser.error(f"argument --model: {exc}")
    leaderboard_mode = len(keys) > 1 or args.seeds > 1
    try:
        if leaderboard_mode:
            if args.summary_only or args.evaluate or args.predict or args.predict_csv or args.resume:
                raise UsageError("argument --model: a model list or --seeds trains a leaderboard;"
                                 " --summary-only, --evaluate, --predict and --resume take one model")
            check_writable(args.out_dir)
            signal.signal(signal.SIGTERM, _terminate)
            run_leaderboard(args, keys)
            return 0
        strategy = model_strategy.get_strategy(keys[0])
        if args.summary_only:
            path = ArtifactPaths(strategy.stem, args.out_dir).summary
            check_writable(args.out_dir)
            model = strategy.get_model("cpu")
            visualization.save_summary(model, path, summary_title(strategy, model))
            print(f"wrote {path}")
            return 0
        cfg = resolve_config(args, strategy)
        check_writable(cfg.out_dir)
        if args.evaluate:
            evaluate_saved(cfg)
            return 0
        if args.predict or args.predict_csv:
            predict_saved(cfg, args.predict, args.predict_csv)
            return 0
        signal.signal(signal.SIGTERM, _terminate)
        run(cfg, resume=args.resume)
    except (UsageError, data_utils.MNISTDataError, model_strategy.IncompatibleWeightsError,
            predict.PredictionInputError) as exc:
        parser.error(str(exc))
    except training.DivergenceError as exc:
        print(f"{parser.prog}: error: {exc}. Try a lower --max_lr (OneCycle) or --lr. The metrics JSON records"
              " the divergence; earlier runs' weights are untouched; the checkpoint holds the last finished epoch,"
              " if any.", file=sys.stderr)
        return 3
    except Interrupted as stop:
        if leaderboard_mode:
            print(f"{parser.prog}: interrupted; the leaderboard files hold the models finished before it"
                  " (none if it was the first); run the same command again to start over.", file=sys.stderr)
        elif stop.epochs_done == 0:
            print(f"{parser.prog}: interrupted before the first epoch ended; nothing was saved.", file=sys.stderr)
        else:
            again = " ".join(a for a in argv if a != "--resume")
            print(f"{parser.prog}: interrupted; epochs 1-{stop.epochs_done} are saved in {stop.checkpoint}."
                  f" Continue with: python main.py {again} --resume", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; nothing was saved.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
