"""One place for a run's settings: the record (``RunConfig``) and how the model's recipe and the given
settings resolve into it.

Rule: a setting given explicitly wins; else the model's recipe; else, for rates, the chosen optimizer's
usual ones (a recipe's Adam rates mean nothing to SGD). Each optimizer and scheduler declares what it
reads (``optimizers.OPTIMIZERS``, ``lr_schedulers``): a setting given for neither is a ``ConfigError``
naming both, and one left unread is recorded as None, so a record holds exactly what the run used.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

import torch

try:
    import tomllib
except ImportError:  # Python 3.10: JSON only
    tomllib = None

import acceleration
import augmentations
import lr_schedulers
import model_strategy
import optimizers
from core.artifacts import ArtifactPaths, WriteError, probe_writable
from core.registry import UnknownName
from models import knobs as models_knobs

MAX_EPOCHS = 1000
MAX_SEED = 2**32 - 1  # seeds are mixed with epoch numbers into 64-bit generator seeds
MAX_BATCH_SIZE = 60_000  # MNIST's training set
MAX_IMAGES = 60_000  # --subset, --val-split: at most MNIST's training set
MAX_SEEDS = 100  # --seeds: models trained per key in one leaderboard run
MAX_JOBS = 64  # --jobs: a leaderboard's runs at a time, each a process


class ConfigError(ValueError):
    """A setting that cannot work; ``setting`` names it (the CLI words it as its flag)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> tuple:  # rebuilt whole when a worker process sends it back (training.jobs)
        return type(self), (self.setting, str(self))

    @property
    def flag(self) -> str:
        return "--" + self.setting.replace("_", "-")


@dataclass(frozen=True)
class RunConfig:
    model: str
    scheduler: str
    epochs: int
    optimizer: str
    lr: float | None  # the constant or initial rate; None when the scheduler sets it (onecycle)
    max_lr: float | None  # OneCycle's peak; None under other schedulers
    momentum: float | None  # None for optimizers without momentum
    weight_decay: float
    batch_size: int
    label_smoothing: float
    seed: int
    device: str
    data_dir: str
    loader: str
    subset: int | None
    val_split: int
    out_dir: str | None
    patience: int | None = None
    verify: bool = True
    cuda_graph: bool | None = None  # CUDA runs only: replay each step from a CUDA graph
    backend: str = "auto"  # how the model runs fast (acceleration.BACKENDS); the same network either way
    val_split_by: str = "auto"  # writers (QMNIST's writer ids), random (images), auto: writers when present
    augment: str = "rotation"  # a strategy of augmentations.AUGMENTATIONS
    outliers: float = 0.0  # non-digits added per training digit, taught to be no digit (outlier exposure)
    # The model's knobs (models/knobs.py): None where the architecture has no such knob; resolved to its default
    dropout: float | None = None  # the dropout rate (cnn, cnn-bn: the head's; their feature maps drop half of it)
    width: float | None = None  # the width multiplier of every hidden layer
    batch_norm: bool | None = None  # batch norm on or off, where the net has it
    init: str = "default"  # the initialisation scheme (models.knobs.INITS)

    @property
    def knobs(self) -> dict[str, Any]:
        """The model's knobs as this run builds it (``ModelStrategy.get_model``): those the architecture has."""
        return {k: getattr(self, k) for k in KNOBS if getattr(self, k) is not None}

    def to_dict(self) -> dict:
        """The settings, plus the chosen scheduler's fixed constants."""
        return {**asdict(self), "scheduler_constants": dict(lr_schedulers.get_scheduler(self.scheduler).constants)}


# What a run recorded before --augment existed did: the design card's rotation, the only augmentation then.
UNRECORDED_AUGMENT = "rotation"


def recorded_augment(settings: dict[str, Any]) -> str:
    """The augmentation a metrics record's ``config`` trained with (records older than --augment lack it)."""
    return settings.get("augment") or UNRECORDED_AUGMENT


def recorded_outliers(settings: dict[str, Any]) -> float:
    """The non-digits per digit a metrics record's ``config`` trained with (records older than --outliers: none)."""
    return float(settings.get("outliers") or 0.0)


MAX_OUTLIERS = 1.0  # at most one non-digit per training digit
KNOBS = ("dropout", "width", "batch_norm", "init")
MAX_WIDTH = 8.0  # the width multiplier's ceiling (a V3 of width 8 has ~0.5 M parameters)
KNOB_WORDS = {"dropout": "dropout", "width": "width multiplier", "batch_norm": "batch norm", "init": "initialisation"}


def check_knobs(model: str, given: dict[str, Any]) -> None:
    """Refuse a knob (not None) that model ``model`` does not have, naming the models that have it."""
    strategy = model_strategy.get_strategy(model)
    for knob in KNOBS:
        if given.get(knob) is not None and knob not in strategy.knobs:
            having = [k for k in model_strategy.available_models() if knob in model_strategy.get_strategy(k).knobs]
            raise ConfigError(knob, f"model {strategy.key} has no {KNOB_WORDS[knob]}; models with it: {', '.join(having)}")


# Settings a resumed run may change: where things are, and which device runs them.
RESUMABLE_CHANGES = frozenset({"data_dir", "out_dir", "device", "cuda_graph", "backend"})
SETTINGS = frozenset(f.name for f in fields(RunConfig))


DEVICES = ("auto", "cpu", "cuda", "mps")
VAL_SPLITS = ("auto", "writers", "random")


def resolve_device(name: str) -> str:
    """``auto``: cuda, then mps, then cpu; a named device must be present."""
    present = {"cpu": True, "cuda": torch.cuda.is_available(),
               "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}
    if name == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if present[d])
    if name not in present:
        raise ConfigError("device", f"unknown device {name!r}; valid: {', '.join(DEVICES)}")
    if not present[name]:
        raise ConfigError("device", f"{name} is not available on this machine")
    return name


def resolve(model: str, given: dict[str, Any], device: str = "cpu", soft: frozenset[str] = frozenset()) -> RunConfig:
    """The run of ``model`` with the ``given`` settings (None: not given) on the resolved ``device``.

    ``soft``: settings that came from a recorded run rather than a flag; one the chosen optimizer or
    scheduler does not read is dropped instead of refused (a rerun may switch the scheduler).
    """
    unknown = set(given) - SETTINGS
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"unknown setting; valid: {', '.join(sorted(SETTINGS))}")
    strategy = model_strategy.get_strategy(model)
    recipe = strategy.recipe
    values = {k: v for k, v in given.items() if v is not None}
    optimizer = values.get("optimizer", recipe.optimizer)
    scheduler = values.get("scheduler", recipe.scheduler)
    try:
        spec = optimizers.OPTIMIZERS[optimizer]
        schedule = lr_schedulers.SCHEDULERS[scheduler]
    except UnknownName as exc:
        raise ConfigError(exc.kind, str(exc)) from None
    rates = recipe if optimizer == recipe.optimizer else spec
    unread = [(f"scheduler {scheduler}", "max_lr" if schedule.reads == "lr" else "lr")]
    if "momentum" not in spec.reads:
        unread.append((f"optimizer {optimizer}", "momentum"))
    if not device.startswith("cuda"):
        unread.append((f"device {device}", "cuda_graph"))
    for reader, setting in unread:
        if setting in values and setting not in soft:
            raise ConfigError(setting, f"the {reader} does not read it; leave it out or choose another")
    check_knobs(strategy.key, {k: v for k, v in values.items() if k not in soft})
    settings = dict(
        model=strategy.key, scheduler=scheduler, epochs=recipe.epochs, optimizer=optimizer,
        lr=rates.lr, max_lr=rates.max_lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
        batch_size=recipe.batch_size, label_smoothing=recipe.label_smoothing, augment=recipe.augment,
        outliers=recipe.outliers, seed=1, device=device,
        data_dir=".", loader="tensor", subset=None, val_split=0, out_dir=None, cuda_graph=True)
    settings |= {k: v for k, v in strategy.knobs.items()}  # the architecture's own, unless given
    settings |= values
    settings |= {k: None for k in KNOBS if k not in strategy.knobs}  # a recorded run of another model may name them
    settings |= {"model": strategy.key, "device": device,
                 "backend": acceleration.resolve(values.get("backend", "auto"), device)}
    for _, setting in unread:
        settings[setting] = None
    cfg = RunConfig(**settings)
    check(cfg)
    return cfg


def check(cfg: RunConfig) -> None:
    """Every check that needs no data."""
    if not 1 <= cfg.epochs <= MAX_EPOCHS:
        raise ConfigError("epochs", f"{cfg.epochs} is outside [1, {MAX_EPOCHS}]")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError("seed", f"{cfg.seed} is outside [0, {MAX_SEED}]")
    if not 1 <= cfg.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError("batch_size", f"{cfg.batch_size} is outside [1, {MAX_BATCH_SIZE}]")
    if cfg.subset is not None and not 1 <= cfg.subset <= MAX_IMAGES:
        raise ConfigError("subset", f"{cfg.subset} is outside [1, {MAX_IMAGES}]")
    if not 0 <= cfg.val_split <= MAX_IMAGES:
        raise ConfigError("val_split", f"{cfg.val_split} is outside [0, {MAX_IMAGES}]")
    if cfg.patience is not None and not 1 <= cfg.patience <= MAX_EPOCHS:
        raise ConfigError("patience", f"{cfg.patience} is outside [1, {MAX_EPOCHS}]")
    if cfg.augment not in augmentations.AUGMENTATIONS:
        raise ConfigError("augment", str(UnknownName("augmentation", cfg.augment, list(augmentations.AUGMENTATIONS))))
    if cfg.loader == "torchvision" and cfg.augment not in augmentations.CLASSIC:
        raise ConfigError("augment", f"the torchvision loader (the classic pipeline) has {' or '.join(augmentations.CLASSIC)},"
                          f" not {cfg.augment} (model {cfg.model}'s recipe:"
                          f" {model_strategy.get_strategy(cfg.model).recipe.augment}); add --augment rotation")
    if not 0 <= cfg.outliers <= MAX_OUTLIERS:
        raise ConfigError("outliers", f"{cfg.outliers} is outside [0, {MAX_OUTLIERS}]")
    if cfg.loader == "torchvision" and cfg.outliers:
        raise ConfigError("outliers", f"the torchvision loader (the classic pipeline) adds no non-digits (model"
                          f" {cfg.model}'s recipe adds {cfg.outliers} per digit); add --outliers 0")
    if cfg.dropout is not None and not 0 <= cfg.dropout < 1:
        raise ConfigError("dropout", f"{cfg.dropout} is outside [0, 1)")
    if cfg.width is not None and not 0 < cfg.width <= MAX_WIDTH:
        raise ConfigError("width", f"{cfg.width} is outside (0, {MAX_WIDTH}]")
    if cfg.init not in models_knobs.INITS:
        raise ConfigError("init", str(UnknownName("initialisation", cfg.init, list(models_knobs.INITS))))
    if cfg.val_split_by not in VAL_SPLITS:
        raise ConfigError("val_split_by", f"unknown kind {cfg.val_split_by!r}; valid: {', '.join(VAL_SPLITS)}")
    if cfg.patience is not None and cfg.val_split == 0:
        raise ConfigError("patience", "needs --val-split N > 0 (it watches validation accuracy)")


def probe_out_dir(out_dir: str | None, stems: list[str]) -> None:
    """Before any work: the folders under ``out_dir`` are created and written to for real, and no file of
    ``stems`` has a directory in its way; a failure is a ``ConfigError`` of ``--out-dir`` naming the path."""
    paths = [ArtifactPaths(stem, out_dir) for stem in stems]
    try:
        probe_writable(paths[0].folders, [f for p in paths for f in p.files])
    except WriteError as exc:
        raise ConfigError("out_dir", str(exc)) from None


def check_sizes(cfg: RunConfig, num_train_images: int) -> None:
    """The checks that need the training set's size."""
    if cfg.subset is not None and cfg.subset > num_train_images:
        raise ConfigError("subset", f"{cfg.subset} is more than the {num_train_images} training images")
    available = cfg.subset or num_train_images
    if cfg.val_split >= available:
        raise ConfigError("val_split", f"holding out {cfg.val_split} of {available} images leaves none to train on")


def resume_conflicts(saved: dict, cfg: RunConfig) -> list[str]:
    """The settings (beyond ``RESUMABLE_CHANGES``) in which ``cfg`` differs from a checkpoint's record."""
    wanted = asdict(cfg)
    defaults = model_strategy.get_strategy(cfg.model).knobs  # a checkpoint older than the knobs trained with these
    return sorted(k for k in wanted.keys() - RESUMABLE_CHANGES if saved.get(k, defaults.get(k)) != wanted[k])



def read_settings(path: str | Path) -> dict[str, Any]:
    """The settings of a recorded run: a metrics JSON (its ``config``), or a JSON or TOML file of settings
    written by hand. An unknown key or a value of the wrong type is a ``ConfigError`` naming the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"{path}: cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})")\
            from None
    if path.suffix == ".toml" and tomllib is None:
        raise ConfigError("config", f"{path}: TOML needs Python 3.11 or later; write the settings as JSON")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError both are
        raise ConfigError("config", f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):  # a metrics record: where it wrote is
        data = {k: v for k, v in data["config"].items() if k != "out_dir"}  # not part of the run (reruns go to runs/)
        data["augment"] = recorded_augment(data)  # a record older than --augment reruns as it ran, not with today's recipe
        data["outliers"] = recorded_outliers(data)  # ... and one older than --outliers without non-digits
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path}: expected a table of settings")
    data = {k: v for k, v in data.items() if k != "scheduler_constants"}  # recorded for reading, not a setting
    hints = get_type_hints(RunConfig)
    for key, value in data.items():
        if key not in SETTINGS:
            raise ConfigError("config", f"{path}: unknown key {key!r}; valid: {', '.join(sorted(SETTINGS))}")
        kinds = get_args(hints[key]) or (hints[key],)
        fits = (value is None and type(None) in kinds) or (isinstance(value, bool) and bool in kinds) or (
            not isinstance(value, bool) and (isinstance(value, tuple(k for k in kinds if k is not type(None)))
                                             or (isinstance(value, int) and float in kinds)))
        if not fits:
            wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise ConfigError("config", f"{path}: {key} must be {wanted}, got {value!r}")
    return data
