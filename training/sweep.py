"""Sweeps and ablations on Optuna: ``main.py --sweep FILE``.

A TOML file names one model, the settings every trial shares, what varies and the seeds. Each trial trains every
seed as an ordinary run (``runs/<stem>/<study>-<trial id>-s<seed>``: listed by ``--list-runs``, read back with
``--name``); its value is the seeds' mean final-epoch validation accuracy on held-out writers (``val_split``, by
writers where QMNIST is present), never a test set. The study lives in a database Optuna opens: an SQLite file
under ``runs/sweeps/<name>/`` by default, or any URL Optuna accepts (PostgreSQL, MySQL), which lets workers on
several machines run the same file against one study. An interrupted sweep continues where it stopped: finished
trials are kept, and a run cut off mid-way resumes from its last epoch's checkpoint.

Samplers: ``grid`` (every combination of ``[search]``'s lists), ``variants`` (each ``[[variants]]`` entry one trial:
an ablation changes one thing at a time), ``tpe`` and ``random`` (``trials`` draws from lists and ranges). For the
first two a worker takes the next combination no trial has finished or taken; for the others Optuna's samplers draw.
"""
from __future__ import annotations

import hashlib
import json
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import config
import model_strategy
from config import ConfigError
from core import artifacts
from core.artifacts import ArtifactPaths, atomic_save_json, atomic_write_text
from core.tables import markdown_table
from training import loop, runs

SAMPLERS = ("grid", "variants", "tpe", "random")
TOP_KEYS = ("name", "model", "seeds", "sampler", "trials", "storage", "settings", "search", "variants")
SET_BY_SWEEP = ("model", "seed", "out_dir", "data_dir", "device", "resume")  # not settings a sweep file may give
SWEEPS = "sweeps"  # runs/sweeps/<name>/: the default study file, the results table and figure
HEARTBEAT_S = 60  # a worker's running trial beats this often; one silent for GRACE_S was killed and is retried
GRACE_S = 180
OPEN_ATTEMPTS = 3  # opening a study: tries before an error (a second worker may find the tables half made)


@dataclass(frozen=True)
class Range:
    """A numeric interval to draw from (``tpe``/``random``): ``{low = .., high = .., log = true}``."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    name: str
    model: str
    seeds: tuple[int, ...]
    sampler: str
    trials: int | None
    storage: str | None  # None: the SQLite file under runs/sweeps/<name>/
    settings: dict[str, Any]
    search: dict[str, list | Range]
    variants: tuple[dict[str, Any], ...]

    @property
    def folder(self) -> Path:
        return artifacts.RUNS_ROOT / SWEEPS / self.name

    @property
    def url(self) -> str:
        return self.storage or f"sqlite:///{(self.folder / 'study.db').resolve()}"

    def canonical(self) -> str:
        """What the study must be the same for: workers joining it, or a continued sweep, run exactly this."""
        ranges = {k: vars(v) if isinstance(v, Range) else v for k, v in self.search.items()}
        return json.dumps({"model": self.model, "seeds": self.seeds, "sampler": self.sampler, "trials": self.trials,
                           "settings": self.settings, "search": ranges, "variants": self.variants}, sort_keys=True)


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError("sweep", f"{path}: {message}")


def _check_setting(path: Path, where: str, name: str) -> None:
    if name in SET_BY_SWEEP or name not in config.SETTINGS:
        valid = sorted(config.SETTINGS - set(SET_BY_SWEEP))
        raise _fail(path, f"unknown setting {name!r} in {where}; valid: {', '.join(valid)}")


def read_spec(path: str | Path, storage: str | None = None) -> SweepSpec:
    """The sweep file, every setting checked (names, values, each combination resolved as a run would be);
    a fault is a ``ConfigError`` of ``--sweep`` naming the file. ``storage``: a database URL overriding the file's."""
    path = Path(path)
    if path.suffix != ".toml":
        raise _fail(path, "a sweep file is TOML (.toml)")
    if config.tomllib is None:
        raise _fail(path, "reading TOML needs Python 3.11 or later")
    try:
        raw = config.tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    except ValueError as exc:
        raise _fail(path, f"not valid TOML ({exc})") from None
    unknown = set(raw) - set(TOP_KEYS)
    if unknown:
        raise _fail(path, f"unknown key {sorted(unknown)[0]!r}; valid: {', '.join(TOP_KEYS)}")
    name = raw.get("name", path.stem)
    problem = isinstance(name, str) and artifacts.run_name_problem(name)
    if not isinstance(name, str) or problem:
        raise _fail(path, f"name: {problem or 'must be a string'}")
    try:
        model = model_strategy.get_strategy(str(raw.get("model", ""))).key
    except ValueError as exc:
        raise _fail(path, f"model: {exc}") from None
    seeds = raw.get("seeds", [1])
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= config.MAX_SEED for s in seeds):
        raise _fail(path, f"seeds: a list of integers 0-{config.MAX_SEED}, e.g. [1, 2, 3]")
    sampler = raw.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise _fail(path, f"sampler: {sampler!r} is not one of {', '.join(SAMPLERS)}")
    trials = raw.get("trials")
    if sampler in ("tpe", "random") and not (isinstance(trials, int) and trials >= 1):
        raise _fail(path, f"trials: the {sampler} sampler needs a number of trials (an integer >= 1)")
    if sampler in ("grid", "variants") and trials is not None:
        raise _fail(path, f"trials: the {sampler} sampler runs every combination; leave trials out")
    settings, search = _table(path, raw, "settings"), _table(path, raw, "search")
    for key in settings:
        _check_setting(path, "[settings]", key)
    ranges: dict[str, list | Range] = {}
    for key, value in search.items():
        _check_setting(path, "[search]", key)
        ranges[key] = _choices(path, key, value, sampler)
    variants = raw.get("variants", [])
    if sampler == "variants":
        if search or not variants or not isinstance(variants, list):
            raise _fail(path, "the variants sampler takes [[variants]] entries (each a name and its settings), no [search]")
        names = [v.get("name") if isinstance(v, dict) else None for v in variants]
        if not all(isinstance(n, str) and not artifacts.run_name_problem(n) for n in names) or len(set(names)) != len(names):
            raise _fail(path, "each [[variants]] entry needs a name of its own (letters, digits, '.', '_', '-')")
        for variant in variants:
            for key in variant.keys() - {"name"}:
                _check_setting(path, f"variant {variant['name']!r}", key)
    elif variants:
        raise _fail(path, f"[[variants]] belong to the variants sampler, not {sampler}")
    elif not search:
        raise _fail(path, "[search] names nothing to vary")
    spec = SweepSpec(path, name, model, tuple(seeds), sampler, trials, storage or raw.get("storage"), settings, ranges,
                     tuple(variants))
    found = combinations(spec)
    if len({json.dumps(c, sort_keys=True) for c in found}) != len(found):
        raise _fail(path, "two trials have the same settings; each variant must change something of its own")
    for settings_of_trial in found:
        run = f"{name}-{trial_id(spec, settings_of_trial)}-s{max(spec.seeds)}"
        if artifacts.run_name_problem(run):
            raise _fail(path, f"name: its runs' folders would be named like {run!r}, too long; shorten the name")
    for trial_settings in [*found, *_range_corners(spec)]:
        for seed in spec.seeds[:1]:
            resolved = resolve(spec, trial_settings, seed, "cpu", Path("."))
            if not resolved.val_split:
                raise _fail(path, "settings: val_split must be > 0: a trial is judged on validation accuracy on"
                            " held-out writers, never on the test set")
    return spec


def _table(path: Path, raw: dict, key: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise _fail(path, f"[{key}] must be a table")
    return value


def _choices(path: Path, key: str, value: Any, sampler: str) -> list | Range:
    if isinstance(value, list) and value:
        return value
    if isinstance(value, dict) and sampler in ("tpe", "random") and set(value) <= {"low", "high", "log"} and \
            all(isinstance(value.get(b), (int, float)) and not isinstance(value.get(b), bool) for b in ("low", "high")):
        low, high = value["low"], value["high"]
        if not low < high or (value.get("log") and low <= 0):
            raise _fail(path, f"[search] {key}: needs low < high (and low > 0 with log)")
        return Range(float(low), float(high), bool(value.get("log", False)), isinstance(low, int) and isinstance(high, int))
    wanted = "a list of choices" + (" or {low, high, log}" if sampler in ("tpe", "random") else "")
    raise _fail(path, f"[search] {key}: expected {wanted}")


def combinations(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every trial's settings, in the file's order (``grid``: the product of the lists; ``variants``: each entry);
    for ``tpe``/``random``, each choice of every list (what they may draw)."""
    if spec.sampler == "variants":
        return [{k: v for k, v in variant.items() if k != "name"} for variant in spec.variants]
    lists = {k: v for k, v in spec.search.items() if isinstance(v, list)}
    found: list[dict[str, Any]] = [{}]
    for key, choices in lists.items():
        found = [{**done, key: choice} for done in found for choice in choices]
    return found


def _range_corners(spec: SweepSpec) -> list[dict[str, Any]]:
    ranges = {k: v for k, v in spec.search.items() if isinstance(v, Range)}
    return [{k: (r.low if end == 0 else r.high) for k, r in ranges.items()} for end in (0, 1)] if ranges else []


def resolve(spec: SweepSpec, settings: dict[str, Any], seed: int, device: str, out_dir: Path,
            local: dict[str, Any] | None = None) -> config.RunConfig:
    """One run of a trial, as ``main.py`` would resolve it; a setting that cannot work names the file. ``local``:
    what this machine's command line says (``data_dir``, ``verify``), not part of the study."""
    given = {**spec.settings, **settings, "seed": seed, "out_dir": str(out_dir), **(local or {})}
    try:
        return config.resolve(spec.model, given, device)
    except ConfigError as exc:
        raise _fail(spec.path, f"{exc.setting} ({', '.join(f'{k}={v!r}' for k, v in settings.items()) or 'settings'}):"
                    f" {exc}") from None


def trial_id(spec: SweepSpec, settings: dict[str, Any]) -> str:
    """A trial's name in its runs' folders: the variant's name, else a short digest of its settings."""
    for variant in spec.variants:
        if {k: v for k, v in variant.items() if k != "name"} == settings:
            return variant["name"]
    readable = "_".join(f"{k.replace('_', '')}{v}" for k, v in settings.items()) or "recipe"
    if len(readable) <= 40 and not artifacts.run_name_problem(readable):
        return readable
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


# --------------------------------------------------------------------------- the study


def open_study(spec: SweepSpec):  # noqa: ANN201 - an optuna.Study; optuna is imported only by sweeps
    """The study of ``spec`` in its database, created or joined; one that was made from another file's settings
    is refused (a rename makes a new study). An unreachable database is a ``ConfigError`` of ``--storage``."""
    import optuna  # noqa: PLC0415 - only sweeps need it

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed or interrupted trial is said in one line, no traceback
    if spec.storage is None:
        spec.folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental; it frees a killed worker's trial
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(spec.url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
            sampler = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}.get(
                spec.sampler, optuna.samplers.RandomSampler)(seed=spec.seeds[0])
            study = optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, direction="maximize",
                                        load_if_exists=True)
            made_from = study.user_attrs.get("spec")
            if made_from is None:
                study.set_user_attr("spec", spec.canonical())
            break
        except Exception as exc:  # noqa: BLE001 - a driver's or SQLAlchemy's error: one line naming the database
            if attempt + 1 < OPEN_ATTEMPTS:  # workers starting together race to create the tables: try again
                time.sleep(0.5 + attempt)
                continue
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise ConfigError("storage", f"cannot open the study {spec.name!r} at {masked(spec.url)}: {reason}") from None
    if made_from is not None and made_from != spec.canonical():
        raise _fail(spec.path, f"the study {spec.name!r} in {masked(spec.url)} was made from other settings; give this"
                    " sweep another name to start a new study")
    return study


def masked(url: str) -> str:
    """A database URL without its password."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}{':***' if ':' in user else ''}@{tail}"


class SweepInterrupted(Exception):
    """Ctrl-C during a sweep: the finished trials are kept; the same command continues it."""

    def __init__(self, spec: SweepSpec, finished: int) -> None:
        super().__init__(f"interrupted; the study {spec.name!r} keeps its {finished} finished trial(s) and the"
                         " interrupted run's last epoch; run the same command again to continue")


def run(spec: SweepSpec, device: str, local: dict[str, Any], events: bool = True, say=print) -> dict:  # noqa: ANN001
    """Work on the study until no trial is left (other workers may share it), then write its results; returns
    them (``results``). ``local``: this machine's ``data_dir`` and ``verify``. Each trial runs under Optuna's
    ``optimize``, whose heartbeat lets another worker take over the trial of one that was killed."""
    import optuna  # noqa: PLC0415

    study = open_study(spec)
    state = optuna.trial.TrialState

    def objective(trial: optuna.Trial) -> float:
        settings = _suggest(spec, trial)
        ident = trial_id(spec, settings)
        if spec.sampler in ("grid", "variants") and any(
                t.number < trial.number and t.state == state.RUNNING and _ident(spec, t) == ident
                for t in study.get_trials(deepcopy=False)):
            trial.set_user_attr("duplicate", "another worker took this combination first")
            raise optuna.TrialPruned  # it runs there; its runs' folders are that worker's
        say(f"trial {trial.number} ({ident}): " + (", ".join(f"{k} {v}" for k, v in settings.items()) or "the recipe"))
        try:
            values = [_seed_run(spec, trial, ident, settings, seed, device, local, events) for seed in spec.seeds]
        except loop.DivergenceError as exc:
            trial.set_user_attr("diverged", str(exc))
            say(f"trial {trial.number} ({ident}) diverged: {exc}")
            raise optuna.TrialPruned from None  # finished: a diverged setting is not tried again
        say(f"trial {trial.number} ({ident}): validation {statistics.fmean(values):.2f}% (mean of {len(values)} seeds)")
        return statistics.fmean(values)

    try:
        _work(spec, study, objective)
    except (KeyboardInterrupt, runs.Interrupted):  # optimize has marked a running trial failed: it is run again
        finished = sum(t.state == state.COMPLETE for t in study.get_trials(deepcopy=False))
        raise SweepInterrupted(spec, finished) from None
    return write_results(spec, study)


def _work(spec: SweepSpec, study, objective) -> None:  # noqa: ANN001
    """Trials until none is left: for grid and variants the first combination no trial has finished or taken
    (a trial left waiting, enqueued by a worker stopped before it began, is taken first)."""
    import optuna  # noqa: PLC0415

    state = optuna.trial.TrialState
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a worker killed without a word: its trial is free again
        trials = study.get_trials(deepcopy=False)
        if spec.sampler in ("grid", "variants"):
            if not any(t.state == state.WAITING for t in trials):
                taken = {_ident(spec, t) for t in trials if t.state in (state.COMPLETE, state.RUNNING) or (
                    t.state == state.PRUNED and "duplicate" not in t.user_attrs)}
                left = [c for c in combinations(spec) if trial_id(spec, c) not in taken]
                if not left:
                    return
                study.enqueue_trial(_params(spec, left[0]))  # the file's order; a racing worker may take the same
        elif sum(t.state in (state.COMPLETE, state.PRUNED, state.RUNNING) for t in trials) >= spec.trials:
            return
        study.optimize(objective, n_trials=1, gc_after_trial=False)


def _ident(spec: SweepSpec, trial) -> str:  # noqa: ANN001
    """The combination a trial of the study runs (one still waiting has only its enqueued parameters)."""
    return trial_id(spec, _settings(spec, trial.params or trial.system_attrs.get("fixed_params", {})))


def _params(spec: SweepSpec, settings: dict[str, Any]) -> dict[str, Any]:
    """A combination as Optuna parameters (``variants``: the entry's name)."""
    return {"variant": trial_id(spec, settings)} if spec.sampler == "variants" else settings


def _settings(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    if spec.sampler == "variants":
        return next((c for c in combinations(spec) if trial_id(spec, c) == params.get("variant")), {"?": params})
    return dict(params)


def _suggest(spec: SweepSpec, trial) -> dict[str, Any]:  # noqa: ANN001
    if spec.sampler == "variants":
        return _settings(spec, {"variant": trial.suggest_categorical("variant", [v["name"] for v in spec.variants])})
    chosen = {}
    for key, choices in spec.search.items():
        if isinstance(choices, Range):
            suggest = trial.suggest_int if choices.integer else trial.suggest_float
            chosen[key] = suggest(key, choices.low, choices.high, log=choices.log)
        else:
            chosen[key] = trial.suggest_categorical(key, choices)
    return chosen


def _seed_run(spec: SweepSpec, trial, ident: str, settings: dict[str, Any], seed: int, device: str,  # noqa: ANN001
              local: dict[str, Any], events: bool) -> float:
    """One seed of a trial as an ordinary run: reused when it finished before, resumed from its checkpoint when it
    was cut off; its final-epoch validation accuracy."""
    stem = model_strategy.get_strategy(spec.model).stem
    root = artifacts.run_dir(stem, f"{spec.name}-{ident}-s{seed}")
    paths = ArtifactPaths(stem, root)
    record = _finished(paths)
    if record is None:
        cfg = resolve(spec, settings, seed, device, root, local)
        record = runs.train_and_save(cfg, resume=paths.checkpoint.is_file(), events=events)
    last = record["history"]["epochs"][-1]
    trial.set_user_attr(f"seed {seed}", {"run": str(root), "val_acc": last["val_acc"],
                                         "seconds": record["summary"].get("train_seconds")})
    return float(last["val_acc"])


def _finished(paths: ArtifactPaths) -> dict | None:
    try:
        record = json.loads(paths.metrics.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") == "complete" else None


# --------------------------------------------------------------------------- results


def results(spec: SweepSpec, study) -> dict:  # noqa: ANN001
    """Every finished trial: its settings, each seed's validation accuracy, mean and spread; the trial chosen on
    validation, and only then its runs' final-epoch test accuracy (read once, after the choice)."""
    import optuna  # noqa: PLC0415

    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        settings = _settings(spec, t.params)
        seeds = {k.removeprefix("seed "): v for k, v in t.user_attrs.items() if k.startswith("seed ")}
        accs = [v["val_acc"] for v in seeds.values()]
        rows.append({"trial": t.number, "id": trial_id(spec, settings), "settings": settings, "val_acc": accs,
                     "mean": statistics.fmean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                     "runs": [v["run"] for v in seeds.values()],
                     "seconds": sum(v.get("seconds") or 0 for v in seeds.values())})
    unique = {}
    for row in rows:  # two workers that raced to one combination: the first finished trial stands
        unique.setdefault(row["id"], row)
    rows = list(unique.values())
    chosen = max(rows, key=lambda r: r["mean"], default=None)
    test, where = None, None
    if chosen is not None:
        stem = model_strategy.get_strategy(spec.model).stem
        records = [ArtifactPaths(stem, Path(r)).metrics for r in chosen["runs"]]
        test = [json.loads(m.read_text())["summary"]["final_test_acc"] for m in records]
        where = {**json.loads(records[0].read_text()).get("environment", {}),  # where the chosen trial trained
                 "date": time.strftime("%Y-%m-%d", time.localtime(records[0].stat().st_mtime))}
    diverged = {trial_id(spec, _settings(spec, t.params)): t.user_attrs["diverged"]
                for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
                if "diverged" in t.user_attrs}
    return {"sweep": spec.name, "model": spec.model, "sampler": spec.sampler, "seeds": list(spec.seeds), "machine": where,
            "diverged": diverged,
            "settings": spec.settings, "objective": "final-epoch validation accuracy on held-out writers (mean of seeds)",
            "trials": rows, "chosen": None if chosen is None else chosen["id"],
            "chosen_test_acc": test, "seconds": sum(r["seconds"] for r in rows)}


def table(found: dict) -> str:
    """The results as a markdown table, best first; the chosen trial marked."""
    keys = list(dict.fromkeys(k for r in found["trials"] for k in r["settings"]))
    rows = [(r["id"], *(str(r["settings"].get(k, "-")) for k in keys), f"{r['mean']:.2f} ± {r['std']:.2f}",
             " / ".join(f"{a:.2f}" for a in r["val_acc"]), f"{r['seconds'] / 60:.1f}")
            for r in sorted(found["trials"], key=lambda r: -r["mean"])]
    text = markdown_table(["trial", *keys, "validation acc. (mean ± std)", "per seed", "minutes"],
                          "l" + "l" * len(keys) + "rrr", rows)
    for ident, reason in (found.get("diverged") or {}).items():
        text += f"\n\n**{ident}** diverged ({reason}) and was not tried again."
    if found["chosen"] is not None:
        tests = found["chosen_test_acc"]
        text += (f"\n\nChosen on validation: **{found['chosen']}**; its final-epoch MNIST test accuracy, read once after"
                 f" the choice: {statistics.fmean(tests):.2f}%" + (f" ± {statistics.stdev(tests):.2f}" if len(tests) > 1
                                                                  else "") + f" ({len(tests)} seeds).")
    return text + "\n"


def write_results(spec: SweepSpec, study) -> dict:  # noqa: ANN001
    """``results`` as ``runs/sweeps/<name>/results.json``, ``.md`` and the figure ``results.png``."""
    import visualization  # noqa: PLC0415

    found = results(spec, study)
    spec.folder.mkdir(parents=True, exist_ok=True)
    atomic_save_json(spec.folder / "results.json", found)
    atomic_write_text(spec.folder / "results.md", table(found))
    visualization.save_sweep_plot(found, spec.folder / "results.png")
    return found

