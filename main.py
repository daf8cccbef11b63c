"""Train an MNIST model of the zoo from one command (the CLI only; the work is in the library).

    python main.py --model 3 --scheduler onecycle --epochs 15

Every default comes from the chosen model's recipe (``model_strategy.py``); a flag overrides it.
Exit codes: 0 done, 1 some --predict inputs unreadable (the rest predicted), 2 bad input (flag, file, data,
weights), 3 training diverged, 4 a file could not be written, 130 interrupted.
"""
from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

import acceleration
import config
import data_utils
import model_strategy
from analysis import calibration, detector
from cli.flags import MODE_FLAGS, build_parser, explicit_flags
from cli.modes import MODES, Command
from core import artifacts
from core.artifacts import WriteError
from deploy import export, predict
from digits import font_digits
from training import jobs, loop, runs, sweep
from training.places import locate


def parse(argv: list[str]) -> Command:
    """argv -> a mode and resolved configs; every check that needs no data (``config.ConfigError``),
    including a real write in each folder the command will write to."""
    args = build_parser().parse_args(argv)
    record = config.read_settings(args.config) if args.config else {}
    explicit = explicit_flags(argv)
    soft = frozenset(record.keys() - explicit)  # from the record, not from a flag
    for key in soft:
        setattr(args, key, record[key])
    modes = [flag for flag in MODE_FLAGS if getattr(args, flag.lstrip("-").replace("-", "_"))]
    chosen = modes + (["--resume"] if args.resume else [])  # --resume belongs to training one model
    if len({MODE_FLAGS.get(m, m) for m in chosen}) > 1:
        raise config.ConfigError(chosen[-1].lstrip("-"), f"cannot be combined with {chosen[0]}")
    mode = MODE_FLAGS[modes[0]] if modes else "train"
    for flag in ("best", "save_prepared"):
        if getattr(args, flag) and mode != "predict":
            raise config.ConfigError(flag, "works with --predict or --predict-csv only")
    if args.format != "text" and not args.predict:
        raise config.ConfigError("format", "works with --predict only")
    if args.reject_below is not None and not args.predict:
        raise config.ConfigError("reject_below", "works with --predict only")
    if args.storage is not None and mode != "sweep":
        raise config.ConfigError("storage", "works with --sweep only")
    if mode == "sweep":
        return parse_sweep(args, explicit)
    try:
        keys = model_strategy.keys(args.model)
    except ValueError as exc:
        raise config.ConfigError("model", str(exc)) from None
    for flag in ("host", "port"):
        if flag in explicit and mode != "serve":
            raise config.ConfigError(flag, "works with --serve only")
    if mode in ("serve", "runs"):  # every model unless --model names some; nothing is written
        if args.name is not None:
            raise config.ConfigError("name", f"does not work with --{'serve' if mode == 'serve' else 'list-runs'}")
        keys = keys if "model" in explicit else model_strategy.available_models()
        return Command(mode, args, keys, {}, [])
    if len(keys) > 1 and mode == "predict":  # an ensemble: each member as --predict finds it
        for flag in ("name", "best"):
            if getattr(args, flag):
                raise config.ConfigError(flag, "reads one model; an ensemble (a model list) reads each member's latest"
                                         " run, or the reference")
        args.members_from = args.out_dir  # where the members are: --out-dir, else each one's latest run or reference
    elif len(keys) > 1 or args.seeds > 1:
        if mode != "train" or args.resume:
            raise config.ConfigError("model", "a model list or --seeds trains a leaderboard; --summary-only,"
                                     " --evaluate, --export, --inspect and --resume take one model (--predict: an"
                                     " ensemble)")
        if args.seed + args.seeds - 1 > config.MAX_SEED:
            raise config.ConfigError("seeds", f"seeds {args.seed}-{args.seed + args.seeds - 1} go beyond {config.MAX_SEED}")
        mode = "leaderboard"
    if args.seeds_at_once and args.seeds < 2:
        raise config.ConfigError("seeds_at_once", "trains several seeds at once: give --seeds K with K >= 2")
    if args.jobs > 1 and (args.seeds < 2 or args.seeds_at_once):
        raise config.ConfigError("jobs", "trains several seeds side by side: give --seeds K with K >= 2, and not"
                                 " with --seeds-at-once")
    places = locate(mode, keys[0], args.name, args.resume, args.out_dir)
    args.out_dir = None if places.out_dir is None else str(places.out_dir)
    args.data_dir = args.data_dir or str(data_utils.default_data_dir())
    given = {k: v for k, v in vars(args).items() if k in config.SETTINGS and k not in ("model", "device")}
    if mode not in ("list", "predict") or args.predict_csv or args.save_prepared:
        stems = [model_strategy.get_strategy(k).stem for k in keys] + (["leaderboard"] if mode == "leaderboard" else [])
        config.probe_out_dir(args.out_dir, stems)
    if mode in ("list", "summary"):
        return Command(mode, args, keys, given, [])
    device = config.resolve_device(args.device)
    return Command(mode, args, keys, given, [config.resolve(key, given, device, soft) for key in keys], places.source)


SWEEP_FLAGS = {"sweep", "storage", "data_dir", "device", "tensorboard", "verify"}  # what a sweep's command line may give


def parse_sweep(args, explicit: set[str]) -> Command:  # noqa: ANN001
    """``--sweep FILE``: the file read and every trial's settings checked before anything is written."""
    extra = sorted(explicit - SWEEP_FLAGS)
    if extra:
        raise config.ConfigError(extra[0], "does not work with --sweep: the sweep file sets what its trials share"
                                 " ([settings]) and vary ([search], [[variants]])")
    spec = sweep.read_spec(args.sweep, args.storage)
    args.data_dir = args.data_dir or str(data_utils.default_data_dir())
    args.sweep_spec = spec
    return Command("sweep", args, [spec.model], {}, [])


def _terminate(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: no half step reaches the saved files


def _resume_hint(argv: list[str], checkpoint: Path | None) -> str:
    """The command that continues this run: the same flags, ``--resume`` and, for a run in its own folder under
    runs/, its ``--name`` (a later run would otherwise be the latest)."""
    named = any(a.split("=")[0] in ("--name", "--out-dir") for a in argv)
    root = None if checkpoint is None else Path(checkpoint).resolve().parents[1]
    own = root is not None and root.parents[1] == artifacts.RUNS_ROOT.resolve()  # runs/<stem>/<name>
    run = ["--name", root.name] if own and not named else []
    return shlex.join([sys.executable, "main.py", *(a for a in argv if a != "--resume"), *run, "--resume"])


def _saved(epochs: int) -> str:
    return "epoch 1 is" if epochs == 1 else f"epochs 1-{epochs} are"


# Errors of bad input: one line naming the file or the fault, exit code 2.
BAD_INPUT = (data_utils.MNISTDataError, model_strategy.IncompatibleWeightsError, predict.PredictionInputError,
             export.ExportError, font_digits.FontDigitsError, detector.DetectorError, calibration.CalibrationDataError)


def explain(exc: BaseException, argv: list[str], mode: str | None) -> tuple[int, str]:
    """An error as the exit code and the one line that says it (see the module's docstring); anything else is
    a bug and propagates with its traceback."""
    error = "main.py: error:"
    if isinstance(exc, (config.ConfigError, acceleration.AccelerationError)):
        return 2, f"{error} argument {getattr(exc, 'flag', '--backend')}: {exc}"
    if isinstance(exc, BAD_INPUT):
        return 2, f"{error} {exc}"
    if isinstance(exc, loop.DivergenceError):
        return 3, (f"{error} {exc}. Try a lower --max_lr (OneCycle) or --lr. The metrics JSON records the divergence;"
                   " earlier runs' weights are untouched; the checkpoint holds the last finished epoch, if any.")
    if isinstance(exc, WriteError) and mode == "sweep":
        return 4, (f"{error} cannot write {exc.path}: {exc.reason}. The study keeps its finished trials; when the cause"
                   " is fixed, run the same command again to continue the sweep.")
    if isinstance(exc, WriteError):
        saved = getattr(exc, "epochs_saved", 0)
        after = (f" {_saved(saved).capitalize()} saved in {exc.checkpoint}; when the cause is fixed, continue with:"
                 f" {_resume_hint(argv, exc.checkpoint)}") if saved else " Files written before it are intact."
        return 4, f"{error} cannot write {exc.path}: {exc.reason}.{after}"
    if isinstance(exc, jobs.SeedFailed):
        try:
            code, said = explain(exc.error, argv, None)
        except BaseException:  # noqa: BLE001 - a process that died, or a bug: its own words, not a second traceback
            code, said = 1, f"{type(exc.error).__name__}: {exc.error}"
        return code, (f"main.py: seed {exc.seed} failed ({said.removeprefix(error).strip()}); the leaderboard files hold"
                      " the models finished before it.")
    if isinstance(exc, sweep.SweepInterrupted):
        return 130, f"main.py: {exc}."
    if isinstance(exc, runs.Interrupted):
        if mode == "leaderboard":
            return 130, ("main.py: interrupted; the leaderboard files hold the models finished before it (none if it was"
                         " the first); run the same command again to start over.")
        if exc.finishing:
            return 130, (f"main.py: interrupted while writing the final files; all {exc.epochs_done} epochs are in"
                         f" {exc.checkpoint}. Write them with: {_resume_hint(argv, exc.checkpoint)}")
        if exc.epochs_done == 0:
            return 130, "main.py: interrupted before the first epoch ended; nothing was saved."
        return 130, (f"main.py: interrupted; {_saved(exc.epochs_done)} saved in {exc.checkpoint}."
                     f" Continue with: {_resume_hint(argv, exc.checkpoint)}")
    if isinstance(exc, KeyboardInterrupt):
        return 130, "main.py: interrupted."
    raise exc


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error becomes one line and an exit code (``explain``)."""
    argv = sys.argv[1:] if argv is None else argv
    cmd = None
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cmd = parse(argv)
        return MODES[cmd.mode](cmd) or 0
    except SystemExit as exc:  # argparse has printed the usage and the error (or the help)
        return exc.code if isinstance(exc.code, int) else 2
    except (Exception, KeyboardInterrupt) as exc:
        code, line = explain(exc, argv, None if cmd is None else cmd.mode)
    print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
