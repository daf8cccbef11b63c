"""Train an MNIST model of the zoo from one command (the CLI only; the work is in the library).

    python main.py --model 3 --scheduler onecycle --epochs 15

Every default comes from the chosen model's recipe (``model_strategy.py``); a flag overrides it.
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
from dataclasses import dataclass

import acceleration
import config
import data_utils
import leaderboard
import lr_schedulers
import model_strategy
import optimizers
import predict
import runs
import training
import visualization
from artifacts import ArtifactPaths

# Flags that pick a mode other than training one model (flag -> mode); at most one per command.
MODE_FLAGS = {"--list-models": "list", "--summary-only": "summary", "--evaluate": "evaluate", "--predict": "predict",
              "--predict-csv": "predict"}


def _number(kind: type, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):  # noqa: ANN202
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"{text} is outside {'(' if low_open else '['}{low:g}, {high:g}"
                                             f"{')' if high_open else ']'}")
        return value
    parse.__name__ = "integer" if kind is int else "number"
    return parse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default to its help, unless the help states it already or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = "(default:" in text or action.default is None or action.nargs == 0  # on/off flags say it in words
        return text if shown else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", formatter_class=HelpFormatter,
                                description="Train a model of the MNIST zoo. Defaults marked 'recipe' come from the model.")
    add = p.add_argument
    add("--model", default="3", help="model key or alias (see --list-models); 'all' or a comma list trains a leaderboard")
    add("--seeds", type=_number(int, 1), default=1, help="train each model with seeds --seed, --seed+1, ...; leaderboard")
    add("--scheduler", choices=lr_schedulers.available_schedulers(), help="learning-rate schedule (default: recipe)")
    add("--epochs", type=_number(int, 1, config.MAX_EPOCHS), help=f"epochs, 1-{config.MAX_EPOCHS} (default: recipe)")
    add("--max_lr", "--max-lr", dest="max_lr", type=_number(float, 0, low_open=True),
        help="OneCycle's peak rate; onecycle only (default: recipe, 0.75 for SGD)")
    add("--optimizer", choices=list(optimizers.OPTIMIZERS), help="optimizer (default: recipe)")
    add("--lr", type=_number(float, 0, low_open=True), help="rate of step/plateau/cosine/none (default: recipe)")
    add("--momentum", type=_number(float, 0, 1, high_open=True), help="SGD momentum; SGD only (default: recipe)")
    add("--weight-decay", type=_number(float, 0), help="weight decay (default: recipe)")
    add("--batch-size", type=_number(int, 1, config.MAX_BATCH_SIZE), help="training batch size (default: recipe)")
    add("--label-smoothing", type=_number(float, 0, 1, high_open=True), help="label smoothing (default: recipe)")
    add("--seed", type=_number(int, 0, config.MAX_SEED), default=1, help="seed for weights, shuffling, augmentation")
    add("--device", default="auto", choices=config.DEVICES, help="auto picks cuda, then mps, then cpu")
    add("--backend", default="auto", choices=acceleration.BACKENDS,
        help="how the model runs fast, the same network either way: native (C kernels, CPU), torch (the same fusion"
             " from PyTorch ops), channels-last, none (as built: the classic pipeline); auto: native where it builds,"
             " else torch; channels-last on a GPU")
    add("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
        help="CUDA only: replay each full batch's training step from a CUDA graph (default: on)")
    add("--data-dir", default=str(data_utils.default_data_dir()),
        help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR, else ./data)")
    add("--loader", default="tensor", choices=list(data_utils.LOADERS),
        help="tensor: batches made on the device; torchvision: classic Dataset + DataLoader")
    add("--subset", type=_number(int, 1), help="train on the first N training images")
    add("--val-split", type=_number(int, 0), default=0, help="hold out N training images (seeded) as a validation set")
    add("--patience", type=_number(int, 1), help="stop after K epochs without a higher validation accuracy (needs --val-split)")
    add("--out-dir", help="root for outputs/, plots/, summaries/ (default: this repository)")
    add("--no-verify", dest="verify", action="store_false", help="accept IDX files whose MD5 is not MNIST's")
    add("--resume", action="store_true", help="continue from outputs/<stem>_checkpoint.pt under --out-dir (same flags)")
    add("--evaluate", action="store_true", help="no training: evaluate the saved params under --out-dir and write"
        " per-class scores, the confusion matrix and the mistakes and filters plots")
    add("--predict", nargs="+", metavar="IMG", help="no training: the saved model's digit and probability per image")
    add("--predict-csv", metavar="FILE", help="no training: classify Kaggle rows, write outputs/<stem>_submission.csv")
    add("--list-models", action="store_true", help="print the models table and exit")
    add("--summary-only", action="store_true", help="write the model's torchsummary text and exit")
    return p


@dataclass
class Command:
    mode: str
    args: argparse.Namespace
    keys: list[str]
    given: dict  # the settings given on the command line (None: not given)
    cfgs: list[config.RunConfig]  # one per model (first seed); empty for modes that need none


def parse(argv: list[str]) -> Command:
    """argv -> a mode and resolved configs; every check that needs no data (``config.ConfigError``)."""
    args = build_parser().parse_args(argv)
    modes = [flag for flag in MODE_FLAGS if getattr(args, flag.lstrip("-").replace("-", "_"))]
    chosen = modes + (["--resume"] if args.resume else [])  # --resume belongs to training one model
    if len({MODE_FLAGS.get(m, m) for m in chosen}) > 1:
        raise config.ConfigError(chosen[-1].lstrip("-"), f"cannot be combined with {chosen[0]}")
    try:
        keys = model_strategy.keys(args.model)
    except ValueError as exc:
        raise config.ConfigError("model", str(exc)) from None
    mode = MODE_FLAGS[modes[0]] if modes else "train"
    if len(keys) > 1 or args.seeds > 1:
        if mode != "train" or args.resume:
            raise config.ConfigError("model", "a model list or --seeds trains a leaderboard; --summary-only,"
                                     " --evaluate, --predict and --resume take one model")
        mode = "leaderboard"
    given = {k: v for k, v in vars(args).items() if k in config.SETTINGS and k not in ("model", "device")}
    if mode != "list":
        config.check_out_dir(args.out_dir)
    if mode in ("list", "summary"):
        return Command(mode, args, keys, given, [])
    device = config.resolve_device(args.device)
    return Command(mode, args, keys, given, [config.resolve(key, given, device) for key in keys])


def summary(cmd: Command) -> None:
    strategy = model_strategy.get_strategy(cmd.keys[0])
    path = ArtifactPaths(strategy.stem, cmd.args.out_dir).summary
    model = strategy.get_model("cpu")
    print(f"wrote {visualization.save_summary(model, path, strategy.title(model))}")


def train(cmd: Command) -> None:
    record = runs.train_and_save(cmd.cfgs[0], resume=cmd.args.resume)
    paths = ArtifactPaths(model_strategy.get_strategy(cmd.keys[0]).stem, cmd.cfgs[0].out_dir)
    print(f"final test accuracy {record['summary']['final_test_acc']:.2f}% after {record['summary']['epochs_run']}"
          f" epochs; wrote {paths.params}, {paths.metrics}, {paths.summary} and plots/{paths.stem}*.png"
          f" under {paths.base}")


def run_leaderboard(cmd: Command) -> None:
    paths = leaderboard.train(cmd.keys, cmd.args.seeds, cmd.given, cmd.cfgs[0].device)
    print(f"wrote {', '.join(map(str, paths))}")


MODES = {
    "list": lambda cmd: print(model_strategy.table()),
    "summary": summary,
    "train": train,
    "leaderboard": run_leaderboard,
    "evaluate": lambda cmd: runs.evaluate_saved(cmd.cfgs[0]),
    "predict": lambda cmd: predict.predict_saved(cmd.keys[0], cmd.cfgs[0].out_dir, cmd.cfgs[0].device,
                                                 cmd.args.predict, cmd.args.predict_csv),
}


def _terminate(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: no half step reaches the saved files


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error becomes one line and an exit code (2 input, 3 divergence, 130 interrupt)."""
    argv = sys.argv[1:] if argv is None else argv
    prog, cmd = "main.py", None
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cmd = parse(argv)
        MODES[cmd.mode](cmd)
    except (config.ConfigError, acceleration.AccelerationError) as exc:
        build_parser().error(f"argument {getattr(exc, 'flag', '--backend')}: {exc}")
    except (data_utils.MNISTDataError, model_strategy.IncompatibleWeightsError, predict.PredictionInputError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except training.DivergenceError as exc:
        print(f"{prog}: error: {exc}. Try a lower --max_lr (OneCycle) or --lr. The metrics JSON records the"
              " divergence; earlier runs' weights are untouched; the checkpoint holds the last finished epoch,"
              " if any.", file=sys.stderr)
        return 3
    except runs.Interrupted as stop:
        if cmd is not None and cmd.mode == "leaderboard":
            print(f"{prog}: interrupted; the leaderboard files hold the models finished before it (none if it was"
                  " the first); run the same command again to start over.", file=sys.stderr)
        elif stop.epochs_done == 0:
            print(f"{prog}: interrupted before the first epoch ended; nothing was saved.", file=sys.stderr)
        else:
            again = " ".join(a for a in argv if a != "--resume")
            print(f"{prog}: interrupted; epochs 1-{stop.epochs_done} are saved in {stop.checkpoint}."
                  f" Continue with: {sys.executable} main.py {again} --resume", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was saved.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
