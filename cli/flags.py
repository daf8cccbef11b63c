"""The command line's flags: names, types, documented ranges and help; ``main.py`` parses with it."""
from __future__ import annotations

import argparse

import acceleration
import augmentations
import config
import data_utils
import lr_schedulers
import optimizers
from core.arguments import number as _number
from core.artifacts import RUNS_ROOT
from deploy import export
from models import knobs as models_knobs
from web import server

# Flags that pick a mode other than training one model (flag -> mode); at most one per command.
MODE_FLAGS = {"--list-models": "list", "--summary-only": "summary", "--evaluate": "evaluate", "--predict": "predict",
              "--predict-csv": "predict", "--export": "export", "--inspect": "inspect",
              "--evaluate-external": "external", "--serve": "serve",
              "--list-runs": "runs", "--calibrate": "calibrate", "--sweep": "sweep",
              "--evaluate-reading": "reading"}


def _on_off(text: str) -> bool:
    words = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}
    if text.strip().lower() not in words:
        raise argparse.ArgumentTypeError(f"{text!r} is not on or off")
    return words[text.strip().lower()]


_on_off.__name__ = "on|off"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default to its help, unless the help states it already or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = "(default:" in text or action.default is None or action.nargs == 0  # on/off flags say it in words
        return text if shown else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The flags in argument groups; the modes other than training are one mutually exclusive group."""
    p = argparse.ArgumentParser(prog="main.py", formatter_class=HelpFormatter,
                                description="Train a model of the MNIST zoo. Defaults marked 'recipe' come from the model.")
    recipe = p.add_argument_group("model and recipe", "which model, and how it trains (defaults: the model's recipe)")
    recipe.add_argument("--model", default="3",
                        help="model key or alias (see --list-models); 'all' or a comma list trains a leaderboard")
    recipe.add_argument("--scheduler", choices=lr_schedulers.SCHEDULERS.choices(),
                        help="learning-rate schedule (default: recipe)")
    recipe.add_argument("--epochs", type=_number(int, 1, config.MAX_EPOCHS),
                        help=f"epochs, 1-{config.MAX_EPOCHS} (default: recipe)")
    recipe.add_argument("--max_lr", "--max-lr", dest="max_lr", type=_number(float, 0, low_open=True),
                        help="OneCycle's peak rate, > 0; onecycle only (default: recipe, 0.75 for SGD)")
    recipe.add_argument("--optimizer", choices=optimizers.OPTIMIZERS.choices(), help="optimizer (default: recipe)")
    recipe.add_argument("--lr", type=_number(float, 0, low_open=True),
                        help="rate of step/plateau/cosine/none, > 0 (default: recipe)")
    recipe.add_argument("--momentum", type=_number(float, 0, 1, high_open=True),
                        help="SGD momentum, [0, 1); SGD only (default: recipe)")
    recipe.add_argument("--weight-decay", type=_number(float, 0), help="weight decay, >= 0 (default: recipe)")
    recipe.add_argument("--batch-size", type=_number(int, 1, config.MAX_BATCH_SIZE),
                        help=f"training batch size, 1-{config.MAX_BATCH_SIZE} (default: recipe)")
    recipe.add_argument("--label-smoothing", type=_number(float, 0, 1, high_open=True),
                        help="label smoothing, [0, 1) (default: recipe)")
    recipe.add_argument("--seed", type=_number(int, 0, config.MAX_SEED), default=1,
                        help=f"seed for weights, shuffling, augmentation, 0-{config.MAX_SEED}")
    recipe.add_argument("--seeds", type=_number(int, 1, config.MAX_SEEDS), default=1,
                        help=f"train each model with seeds --seed, --seed+1, ... (1-{config.MAX_SEEDS}); leaderboard")
    recipe.add_argument("--config", metavar="FILE", help="rerun a recorded run: a metrics JSON (its 'config') or a"
                        " JSON/TOML file of settings; flags given as well override single values")

    knobs = p.add_argument_group("model knobs", "change the architecture (default: as published, every parameter count"
                                 " exact); recorded in the metrics and honoured wherever the weights are loaded")
    knobs.add_argument("--dropout", type=_number(float, 0, 1, high_open=True), metavar="RATE",
                       help="dropout rate, [0, 1) (cnn, cnn-bn: the head's; their feature maps drop half of it)")
    knobs.add_argument("--width", type=_number(float, 0, config.MAX_WIDTH, low_open=True), metavar="MULTIPLIER",
                       help=f"width multiplier of every hidden layer, (0, {config.MAX_WIDTH:g}]; channels are rounded")
    knobs.add_argument("--batch-norm", type=_on_off, metavar="on/off",
                       help="batch norm on or off, where the net has it (V1-V3, fc-bn, cnn-bn)")
    knobs.add_argument("--init", choices=models_knobs.INITS.choices(),
                       help="initialisation of the convolutions' and linear layers' weights: default (PyTorch's, or the"
                            " architecture's own), xavier (Glorot, uniform) or kaiming (He, normal, for ReLU)")

    data = p.add_argument_group("data and augmentation")
    data.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: $MNIST_DATA_DIR, else data/ in this repository)")
    data.add_argument("--no-verify", dest="verify", action="store_false", help="accept IDX files whose MD5 is not MNIST's")
    data.add_argument("--loader", default="tensor", choices=data_utils.LOADERS.choices(),
                      help="tensor: batches made on the device; torchvision: classic Dataset + DataLoader")
    data.add_argument("--augment", choices=augmentations.AUGMENTATIONS.choices(),
                      help="how training batches are varied (default: the model recipe's); docs/cli.md describes each")
    data.add_argument("--outliers", type=_number(float, 0, config.MAX_OUTLIERS), metavar="SHARE",
                      help="non-digits (letters of the training fonts, scribbles, shapes, straight strokes, photo crops)"
                           " added per training digit and taught to be no digit, so that --predict can answer 'not a"
                           " digit' (default: the recipe's)")
    data.add_argument("--subset", type=_number(int, 1, config.MAX_IMAGES), help="train on the first N training images")
    data.add_argument("--val-split", type=_number(int, 0, config.MAX_IMAGES), default=0,
                      help="hold out N training images (seeded) as a validation set")
    data.add_argument("--val-split-by", default="auto", choices=config.VAL_SPLITS,
                      help="writers: hold out whole writers (QMNIST/raw/ in --data-dir gives each training digit's writer),"
                           " so no writer is in both; random: random images, as before; auto: writers when QMNIST is there")
    data.add_argument("--patience", type=_number(int, 1, config.MAX_EPOCHS),
                      help="stop after K epochs without a higher validation accuracy (needs --val-split)")

    output = p.add_argument_group("output")
    output.add_argument("--out-dir", help=f"this folder for outputs/, plots/, summaries/, read and written as it is"
                        f" (default: a run's own folder under {RUNS_ROOT.name}/, see --name; the committed reference"
                        " models are in the repository itself, --out-dir .)")
    output.add_argument("--name", help="training: the run's folder under runs/<stem>/, by default named by the time it starts;"
                        " --resume and the modes that read a trained model: which run, by default the latest")
    output.add_argument("--resume", action="store_true",
                        help="continue from outputs/<stem>_checkpoint.pt under --out-dir (same flags)")
    output.add_argument("--best", action="store_true",
                        help="--predict/--predict-csv with the validation-selected params (_best_params.pth)")
    output.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                        help="training: write TensorBoard events under <out-dir>/events/ (tensorboard --logdir runs)"
                             " (default: on)")
    output.add_argument("--format", default="text", choices=("text", "json"),
                        help="--predict: text, one line per image (the digit and the runners-up, or a number's digits, with"
                             " probabilities), or json, one JSON object per image per line (file, number, confidence,"
                             " top, verdict, reason, score, digits)")
    output.add_argument("--reject-below", type=_number(float, 0, 1), metavar="SCORE",
                        help="--predict: answer 'not a digit' below this digit score (the calibrated top probability times the"
                             " digit detector's digit probability), 0-1; 0 never rejects and asks no detector (default:"
                             " the threshold --calibrate chose on development data)")
    output.add_argument("--save-prepared", action="store_true",
                        help="--predict: also write each 28x28 digit the model saw to outputs/prepared/")

    speed = p.add_argument_group("speed", "the same training, run faster; none of these changes what is learnt")
    speed.add_argument("--device", default="auto", choices=config.DEVICES, help="auto picks cuda, then mps, then cpu")
    speed.add_argument("--backend", default="auto", choices=acceleration.BACKENDS.choices(),
                       help="how the model runs fast, the same network either way: native (C kernels, CPU), torch (the"
                            " same fusion from PyTorch ops), channels-last, none (as built: the classic pipeline); auto:"
                            " native where it builds, else torch; channels-last on a GPU")
    speed.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                       help="CUDA only: replay each full batch's training step from a CUDA graph (default: on)")
    speed.add_argument("--seeds-at-once", action="store_true",
                       help="with --seeds K: train the K seeds as one network of K side-by-side copies (grouped layers),"
                            " then split it into K ordinary runs; docs/performance.md 'Seeds at once' measures it")
    speed.add_argument("--jobs", type=_number(int, 1, config.MAX_JOBS), default=1,
                       help=f"with --seeds K: train up to N of the seeds at a time, each in a process of its own with the"
                            f" cores shared out (1-{config.MAX_JOBS}); not bit for bit a run with all cores")

    modes = p.add_argument_group("modes", "at most one; without one, main.py trains")
    one = modes.add_mutually_exclusive_group()
    one.add_argument("--list-models", action="store_true", help="print the models table and exit")
    one.add_argument("--list-runs", action="store_true", help="list your runs under runs/: model, run, when, final"
                     " accuracy and the settings that differ from the model's recipe (with --model, only those models)")
    one.add_argument("--summary-only", action="store_true", help="write the model's torchsummary text and exit")
    one.add_argument("--evaluate", action="store_true", help="no training: evaluate the saved params and write"
                     " per-class scores, the confusion matrix and the mistakes and filters plots under --out-dir")
    one.add_argument("--evaluate-external", action="store_true", help="no training: the saved model on SEMEION and"
                     " optdigits (other writers, through --predict's preparation) and on MNIST's test set per writer"
                     " population; needs SEMEION/ and QMNIST/raw/ in --data-dir, and scikit-learn (which ships optdigits)")
    one.add_argument("--evaluate-reading", action="store_true", help="no training: the saved model read as --predict"
                     " reads files, on test sets only: MNIST test and SEMEION accuracy, calibration error and share"
                     " rejected, the test non-digits rejected per kind, AUROC, 4-digit numbers read exactly; written"
                     " into its metrics JSON under \"reading\" (docs/predict.md)")
    one.add_argument("--calibrate", action="store_true", help="no training: fit the saved model's temperature on the"
                     " development digits (OPTDIGITS' training writers, the development fonts; --data-dir), measure"
                     " its calibration error before and after, and write what --predict then applies (docs/predict.md)")
    one.add_argument("--predict", nargs="+", metavar="IMG",
                     help="no training: the saved model's digit, or number (digits in a row), with probabilities per"
                     " image (docs/predict.md)")
    modes.add_argument("--predict-csv", metavar="FILE", help="no training: classify Kaggle rows, write"
                       " outputs/<stem>_submission.csv (may come with --predict)")
    one.add_argument("--export", choices=export.FORMATS, help="no training: write the saved model as ONNX (float32) or"
                     " int8 ONNX to outputs/<stem>[_int8].onnx, checked with onnxruntime on the whole test set")
    one.add_argument("--inspect", metavar="IMG_OR_TEST_INDEX", help="no training: feature maps after every stage, the"
                     " prediction pipeline and the saliency map of one digit, and every layer's activation statistics"
                     " over the test set")
    one.add_argument("--serve", action="store_true", help="no training: a web app on this machine to draw or upload a"
                     " digit and see every trained model answer, and a dashboard of the zoo (docs/serve.md); with"
                     " --model, only those models")
    one.add_argument("--sweep", metavar="FILE", help="a sweep or ablation on Optuna (a TOML file: the model, the settings"
                     " and knobs to vary, the seeds; docs/sweeps.md): every trial ordinary runs, judged on validation"
                     " accuracy on held-out writers; run it again to continue, or on other machines to share the study")
    modes.add_argument("--storage", metavar="URL", help="--sweep: the study's database, any URL Optuna accepts"
                       " (postgresql://user:password@host/db, sqlite:///file.db); default: the file's storage, else"
                       " runs/sweeps/<name>/study.db")
    web = p.add_argument_group("web app", "--serve only")
    web.add_argument("--host", default=server.DEFAULT_HOST,
                     help="address to listen on; anything but localhost serves every machine that reaches this one")
    web.add_argument("--port", type=_number(int, 0, 65535), default=server.DEFAULT_PORT,
                     help="port to listen on; 0 picks a free one (printed)")
    return p


def explicit_flags(argv: list[str]) -> set[str]:
    """The settings (destinations) that ``argv`` gives explicitly, whatever their defaults."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))
