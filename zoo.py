"""The zoo from Python, and the library calls behind every mode of the command line (one place for both).

    import zoo
    record = zoo.train("3", epochs=1, subset=6000)   # one run, its files under runs/; the metrics record
    model = zoo.load("3")                             # your latest run of V3, else the committed reference
    zoo.predict(model, ["digit.png", array, tensor])  # one Prediction(source, digit, probability) each
    zoo.evaluate(model).accuracy                       # on MNIST's test set

``train``, ``load``, ``predict`` and ``evaluate`` take plain names and keywords; the ``*_saved`` functions
and ``leaderboard`` take a resolved ``config.RunConfig`` and are what ``cli/modes.py`` calls. Errors are
the library's own types (``config.ConfigError`` names the setting); nothing here exits or words them.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import acceleration
import config
import data_utils
import model_strategy
import visualization
from analysis import calibration, detector, evaluation, external, gate, inspection, rejection
from config import ConfigError, RunConfig
from core import artifacts
from core.artifacts import ArtifactPaths, atomic_save_json, atomic_write_bytes, atomic_write_text, trained_root
from deploy import export as exporting
from deploy import predict as predicting
from deploy import reading
from digits import prepare
from training import leaderboard as board
from training import places, runs

Image = str | Path | Tensor | Any  # a file, a (H, W) tensor or array of grey levels (uint8, or floats in [0, 1])


# --------------------------------------------------------------------------------------- in a few lines


def settings(model: str = "3", **overrides: Any) -> RunConfig:
    """The run ``main.py --model MODEL --flag value ...`` would make: the model's recipe, the ``overrides``
    (flag names with underscores: ``epochs=1``, ``max_lr=0.5``, ``data_dir=...``, ``device="cpu"``) on top."""
    given = {"data_dir": str(data_utils.default_data_dir()), **overrides}
    device = config.resolve_device(given.pop("device", "auto"))
    return config.resolve(model, given, device)


def train(model: str = "3", name: str | None = None, **overrides: Any) -> dict:
    """Train one model (``settings``) and write its files into a folder of its own, ``runs/<stem>/<name>`` (default
    name: the time it starts; ``out_dir=`` names the folder itself); its metrics record."""
    cfg = settings(model, **overrides)
    where = places.locate("train", cfg.model, name, False, cfg.out_dir).out_dir
    cfg = dataclasses.replace(cfg, out_dir=str(where))
    config.probe_out_dir(cfg.out_dir, [model_strategy.get_strategy(model).stem])
    return train_run(cfg)


def load(model: str = "3", out_dir: str | Path | None = None, device: str = "cpu", calibrated: bool = False) -> nn.Module:
    """The trained ``model`` in eval mode: from ``out_dir`` when given; else your own run in ``runs/`` when there
    is one, else the committed reference (``main.py --predict`` reads the same one). ``calibrated``: wrapped with
    its ``--calibrate`` temperature, when it has one (the same answers; ``zoo.predict`` of a key does this)."""
    strategy = model_strategy.get_strategy(model)
    root = trained_root(strategy.stem, out_dir)
    net = model_strategy.load_trained(strategy.key, root, device)
    return predicting.calibrated(net, root, strategy.stem) if calibrated else net


def ensemble(models: Iterable[str], out_dir: str | Path | None = None, device: str = "cpu") -> predicting.Ensemble:
    """Several trained models read as one (``--model 1,2,3 --predict``): each loaded as ``load`` finds it, calibrated,
    their probabilities averaged; its threshold of "not a digit" chosen from their ``--calibrate`` development files.
    ``zoo.predict(zoo.ensemble("1,2,3".split(",")), images)`` reads with it."""
    members, files = [], []
    for key in models:
        strategy = model_strategy.get_strategy(key)
        root = trained_root(strategy.stem, out_dir)
        members.append(predicting.calibrated(model_strategy.load_trained(strategy.key, root, device), root, strategy.stem))
        files.append(ArtifactPaths(strategy.stem, root).development)
    return predicting.Ensemble(members, rejection.ensemble_threshold(files))


def _as_model(model: nn.Module | str, calibrated: bool = False) -> nn.Module:
    return load(model, calibrated=calibrated) if isinstance(model, str) else model


def predict(model: nn.Module | str, images: Image | Iterable[Image]) -> list[predicting.Prediction]:
    """The digit, its probability and the runners-up (``Prediction.top``) for each image (a file, a (H, W) array or
    tensor, or a list or (N, H, W) stack of them), prepared as
    ``--predict`` prepares files; ``model`` is a loaded model or a key. An unreadable input raises
    ``deploy.predict.PredictionInputError`` naming every bad one."""
    single = isinstance(images, (str, Path)) or getattr(images, "ndim", 0) == 2  # one file, or one (H, W) image
    return predicting.predict_images(_as_model(model, calibrated=True), [images] if single else list(images))


def evaluate(model: nn.Module | str, data_dir: str | Path | None = None) -> evaluation.Evaluation:
    """Accuracy, per-class scores and the confusion matrix of ``model`` on MNIST's test set."""
    net = _as_model(model)
    test = data_utils.load_mnist(data_dir or data_utils.default_data_dir())["test"]
    device = next(net.parameters()).device
    batches = data_utils.TensorEvalBatches(data_utils.MNISTTensors(test.images.to(device), test.labels.to(device)))
    return evaluation.evaluate_model(net.eval(), batches)[0]


# --------------------------------------------------------------------------------- the modes' calls


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One run under ``runs/`` as ``--list-runs`` shows it."""

    model: str
    folder: Path  # the run's root (outputs/, plots/, summaries/, events/)
    status: str  # the record's: complete, interrupted, diverged, ... (unreadable: no readable record)
    written: float  # when its metrics record was last written (seconds since the epoch)
    final_test_acc: float | None
    epochs_run: int | None
    differs: dict[str, Any]  # the settings that differ from the model's recipe
    latest: bool  # the run the reading modes use when not told which


NOT_RECIPE = {"model", "data_dir", "out_dir", "device", "backend", "cuda_graph", "verify", "loader", "scheduler_constants"}
SEMEION = "SEMEION (other writers)"  # the name of SEMEION's row in a --calibrate record


def list_runs(keys: list[str] | None = None) -> list[RunSummary]:
    """Every run of the models ``keys`` (default: all) under ``runs/``, oldest first: a run's own folder, a
    leaderboard's first seed, or ``runs/`` itself (where runs went before each had a folder)."""
    stems = {s.stem: key for key, s in model_strategy.MODELS.items() if keys is None or key in keys}
    found = []
    for metrics in [*artifacts.RUNS_ROOT.glob("*/*/outputs/*_metrics.json"),
                    *artifacts.RUNS_ROOT.glob("outputs/*_metrics.json")]:
        key = stems.get(metrics.name.removesuffix("_metrics.json"))  # a leaderboard's seed<N> records: not runs
        if key is None or not metrics.is_file() or metrics.parents[1].name == "reference":  # evaluations of it
            continue
        try:
            record = json.loads(metrics.read_text())
            summary, settings = record.get("summary") or {}, record["config"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            record, summary, settings = {"status": "unreadable"}, {}, {}
        recipe = config.resolve(key, {}, "cpu").to_dict()
        differs = {k: v for k, v in settings.items() if k not in NOT_RECIPE and k in recipe and recipe[k] != v}
        root = metrics.parents[1]
        latest = trained_root(model_strategy.get_strategy(key).stem, None).resolve() == root.resolve()
        found.append(RunSummary(key, root, str(record.get("status", "?")), metrics.stat().st_mtime,
                                summary.get("final_test_acc"), summary.get("epochs_run"), differs, latest))
    return sorted(found, key=lambda r: r.written)



def train_run(cfg: RunConfig, resume: bool = False, events: bool = True) -> dict:
    """Training one model, as ``main.py`` does: a checkpoint every epoch, ``resume`` continues from it, ``events``
    writes TensorBoard events (``training.runs.train_and_save``); the metrics record."""
    return runs.train_and_save(cfg, resume=resume, events=events)


def leaderboard(keys: list[str], seeds: int, given: dict, device: str, at_once: bool = False, jobs: int = 1,
                events: bool = True) -> list[Path]:
    """``--model A,B --seeds K``: every model with K seeds, then the leaderboard files (``training.leaderboard``)."""
    return board.train(keys, seeds, given, device, at_once, jobs, events)


def saved_record(saved: ArtifactPaths, cfg: RunConfig | None) -> dict:
    """The metrics record beside saved weights; for weights without a (readable) one, just ``cfg`` (if any)."""
    try:
        return json.loads(saved.metrics.read_text())
    except (OSError, ValueError):
        return {} if cfg is None else {"config": cfg.to_dict()}


def evaluate_saved(cfg: RunConfig, source: Path | None = None) -> dict:
    """``--evaluate``: the model saved under ``source`` (default: ``cfg.out_dir``) on the test set, run as it
    trained (same backend), nothing trained. Its metrics record, with the evaluation, and the figures go
    under ``cfg.out_dir``; the params are not copied."""
    strategy = model_strategy.get_strategy(cfg.model)
    saved = ArtifactPaths(strategy.stem, cfg.out_dir if source is None else source)
    paths = ArtifactPaths(strategy.stem, cfg.out_dir)
    model = model_strategy.load_trained(strategy.key, saved.base, cfg.device)
    model, _ = acceleration.accelerate(model, cfg.backend)
    splits = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)
    pipeline = data_utils.build_pipeline(splits, cfg.loader, cfg.batch_size, cfg.seed, cfg.device)
    metrics = saved_record(saved, cfg)
    result, mistakes = runs.evaluate(model.eval(), pipeline.test, metrics)
    atomic_save_json(paths.metrics, metrics)
    runs.save_figures(model, strategy, result, mistakes, paths)
    return metrics


def calibrate_saved(cfg: RunConfig, source: Path) -> dict:
    """``--calibrate``: the model saved under ``source`` gets a temperature fitted on the development digits
    (``analysis.calibration``) and the threshold of "not a digit" chosen on the gate's score of them, the digit
    detector in front (``analysis.rejection``, ``analysis.gate``); ECE before and after, and the share rejected,
    on them, on MNIST's test set and, when present, on SEMEION (measured only). Written under ``cfg.out_dir``:
    ``<stem>_calibration.json`` (which ``--predict``, the web app and ``zoo.predict`` then apply) and the
    reliability diagrams. Returns the record."""
    strategy = model_strategy.get_strategy(cfg.model)
    model = model_strategy.load_trained(strategy.key, source)
    development = calibration.development_digits(str(cfg.data_dir))
    chosen_on = rejection.development_digits(cfg.data_dir)
    test = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)["test"]
    digits = {**{f"{name} (fitted on)": pair for name, pair in development.items()},
              rejection.STRETCHED: chosen_on[rejection.STRETCHED], "MNIST test": (test.images.float() / 255.0, test.labels)}
    try:
        digits[SEMEION] = external.prepared_semeion(str(cfg.data_dir))
    except external.ExternalDataError:
        pass  # not in --data-dir: measured where it is
    measured = {name: (evaluation.logits(model, x), y) for name, (x, y) in digits.items()}
    fitted = [measured[f"{name} (fitted on)"] for name in development]
    temperature = calibration.fit_temperature(torch.cat([z for z, _ in fitted]), torch.cat([y for _, y in fitted]))
    sets = [(calibration.reliability(name, z.softmax(1), y), calibration.reliability(name, (z / temperature).softmax(1), y))
            for name, (z, y) in measured.items()]
    record = calibration.record(temperature, {n: len(y) for n, (_, y) in development.items()}, sets)
    non_digits = rejection.development_non_digits()
    non_digit_logits = {name: evaluation.logits(model, x) for name, x in non_digits.items()}
    found = detector.load()
    stretched = {SEMEION: external.semeion_stretched(str(cfg.data_dir))} if SEMEION in digits else {}  # as served
    detected = None if found is None else {name: found.digit_probability(x, stretched.get(name)) for name, x in
                                           {**{n: x for n, (x, _) in digits.items()}, **non_digits}.items()}
    development_sets = [f"{name} (fitted on)" for name in development] + [rejection.STRETCHED]
    record |= rejection.choose(temperature, {name: z for name, (z, _) in measured.items()}, non_digit_logits,
                               development_sets, detected)
    record["rejection"]["detector"] = None if found is None else found.fingerprint
    paths = ArtifactPaths(strategy.stem, cfg.out_dir)
    rejection.save_development(paths.development, torch.cat([measured[n][0] for n in development_sets]) / temperature,
                               torch.cat(list(non_digit_logits.values())) / temperature,
                               None if detected is None else torch.cat([detected[n] for n in development_sets]))
    atomic_save_json(paths.calibration, record)
    visualization.save_reliability_plot(record["sets"], paths.reliability_plot,
                                        f"{strategy.stem}: temperature {temperature:.2f}")
    return record


READING_NUMBERS = 200  # numbers of each spacing --evaluate-reading reads (benchmarks.numbers reads 500)


def evaluate_reading_saved(cfg: RunConfig, source: Path) -> dict:
    """``--evaluate-reading``: the model saved under ``source``, calibrated with its threshold, read as ``--predict``
    reads files on test sets only (``deploy.reading``); the record goes into its metrics JSON under ``cfg.out_dir``
    (``reading``). SEMEION is measured when ``--data-dir`` holds it."""
    strategy = model_strategy.get_strategy(cfg.model)
    model = predicting.calibrated(model_strategy.load_trained(strategy.key, source).eval(), source, strategy.stem)
    test = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)["test"]
    try:
        semeion, prepared = external.semeion_pages(str(cfg.data_dir)), external.prepared_semeion(str(cfg.data_dir))
    except external.ExternalDataError:
        semeion = prepared = None  # not in --data-dir: measured where it is
    row = reading.measure(model, test.images, test.labels, rejection.test_non_digits(), semeion, prepared,
                          numbers_per_kind=READING_NUMBERS)
    keep_reading(strategy.key, source, cfg.out_dir, row, cfg)
    return row


def keep_reading(key: str, source: Path, out_dir: Path, row: dict, cfg: RunConfig | None = None) -> None:
    """A reading record (``deploy.reading.measure``, of the model saved under ``source``) kept in the model's metrics
    JSON under ``out_dir`` as ``--evaluate-reading`` keeps it (``benchmarks.rejection --into-metrics`` too); the
    record it joins is the one beside the weights, else just ``cfg``."""
    strategy = model_strategy.get_strategy(key)
    saved, paths = ArtifactPaths(strategy.stem, source), ArtifactPaths(strategy.stem, out_dir)
    metrics = saved_record(saved, cfg)
    metrics["reading"] = {**row, "params_file": model_strategy.trained_params(strategy.key, source).name,
                          "calibrated": row["threshold"] > 0,
                          "note": "test sets only, read as --predict reads files; never used to select or tune anything"}
    atomic_save_json(paths.metrics, metrics)


def evaluate_external_saved(cfg: RunConfig, source: Path) -> list:
    """``--evaluate-external``: the model saved under ``source`` on SEMEION, optdigits and MNIST's test set per writer
    population (``analysis.external``); the scores go into its metrics record under ``cfg.out_dir`` (``external``)."""
    strategy = model_strategy.get_strategy(cfg.model)
    model = model_strategy.load_trained(strategy.key, source)
    test = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)["test"]
    scores = external.evaluate_external(model, test, cfg.data_dir)
    saved, paths = ArtifactPaths(strategy.stem, source), ArtifactPaths(strategy.stem, cfg.out_dir)
    metrics = saved_record(saved, cfg)
    metrics["external"] = {"scores": [s.to_dict() for s in scores], "params_file": model_strategy.trained_params(
        strategy.key, source).name, "note": "never used to select or tune anything"}
    atomic_save_json(paths.metrics, metrics)
    for s in scores:
        print(f"{s.name}: {s.accuracy:.2f}% of {s.images:,}\n    per true digit: {s.per_digit_line()}")
    return scores


def inspect_saved(cfg: RunConfig, target: str, source: Path) -> list[Path]:
    """``--inspect``: for one digit (an image file, or the index of an MNIST test image) the feature maps after
    every stage, the prediction pipeline and the saliency map; over the whole test set every layer's
    activation statistics (printed, and in ``outputs/<stem>_activations.json``). Returns the files written."""
    strategy = model_strategy.get_strategy(cfg.model)
    model = model_strategy.load_trained(strategy.key, source)
    test = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)["test"]
    if target.isdigit():
        if int(target) >= len(test):
            raise ConfigError("inspect", f"test image {target} does not exist (0-{len(test) - 1})")
        digit = test.images[int(target)].float() / 255.0
        shown, what = digit, f"MNIST test image {target} (label {int(test.labels[int(target)])})"
    else:
        try:
            shown = prepare.read_gray(Path(target))
            digit = prepare.mnistify(shown)
        except ValueError as exc:
            raise predicting.PredictionInputError(f"{target}: {exc}") from None
        what = Path(target).name
    paths = ArtifactPaths(strategy.stem, cfg.out_dir)
    batch = data_utils.normalize(digit[None])
    maps, fields = inspection.block_outputs(inspection.capture(model, batch)), inspection.receptive_fields(model)
    sal, predicted, probabilities = inspection.saliency(model, batch[0])
    stats, saturated = inspection.activation_stats(model, test.images)
    print(inspection.stats_table(stats, saturated))
    atomic_save_json(paths.activations, inspection.stats_record(stats, saturated))
    name = f"{strategy.stem}, {what}: said {predicted} ({100 * float(probabilities[predicted]):.1f}%)"
    written = [paths.activations,
               visualization.save_pipeline(shown, digit, maps, probabilities, paths.pipeline_plot, name),
               visualization.save_saliency(digit, sal, paths.saliency_plot, f"{name}: where the prediction looks")]
    if maps:
        written.append(visualization.save_feature_maps(maps, fields, paths.feature_maps_plot,
                                                       f"{name}: feature maps after every stage"))
    return written


def predict_saved(cfg: RunConfig, images: list[str] | None, csv_file: str | None, best: bool = False,
                  save_prepared: bool = False, fmt: str = "text", source: Path | None = None,
                  reject_below: float | None = None, members: list[str] | None = None,
                  members_from: str | None = None) -> int:
    """``--predict`` / ``--predict-csv``: the model saved under ``source`` (default: ``artifacts.trained_root``) on
    new digits, nothing trained. Prints one line per input in its order (``fmt`` ``json``: one JSON object per
    input, unreadable ones included) and one per bad input on stderr; returns how many inputs were bad.
    ``reject_below``: the digit score under which an input is "not a digit" (default: the calibration record's).
    ``members``: two or more model keys read as one ensemble (``ensemble``), each from its own latest run or the
    reference (``members_from``: all from that folder); ``cfg`` then only says where outputs go."""
    strategy = model_strategy.get_strategy(cfg.model)
    source = ArtifactPaths(strategy.stem, source or trained_root(strategy.stem, cfg.out_dir))
    if members:
        try:
            model = ensemble(members, members_from, cfg.device)
        except rejection.MissingDevelopment as exc:
            raise ConfigError("model", f"an ensemble's threshold needs each member calibrated: {exc}") from None
        print(f"ensemble of {', '.join(members)}: the mean of their calibrated probabilities", file=sys.stderr)
    else:
        model = model_strategy.load_trained(strategy.key, source.base, cfg.device)
        if best:
            model_strategy.load_weights(model, source.best_params, strategy.key)
        model = predicting.calibrated(model, source.base, strategy.stem)
        print(f"model {strategy.key}: {source.best_params if best else model_strategy.trained_params(strategy.key, source.base)}",
              file=sys.stderr)
        if reject_below is None and gate.threshold_of(model) == 0:
            print(f"model {strategy.key}: no threshold of 'not a digit' in {source.calibration} (run --calibrate): only"
                  " a blank page is answered 'not a digit'", file=sys.stderr)
    if reject_below is not None:
        model = predicting.with_threshold(model, reject_below)
    out = ArtifactPaths(strategy.stem, cfg.out_dir)
    problems: list[str] = []
    if images:
        paths = [Path(x) for x in images]
        said, prepared = predicting.answer_inputs(model, paths)
        problems += [f"{p.source}: {p.reason}" for p in said if p.verdict == "unreadable"]
        for i, (path, answer) in enumerate(zip(paths, said)):
            where = None
            if save_prepared and i in prepared:
                where = out.base / "outputs" / "prepared" / f"{path.stem}_28x28.png"
                atomic_write_bytes(where, predicting.png_bytes(torch.cat(list(prepared[i]), 1)))  # a number: side by side
            if fmt == "json":
                print(json.dumps({**answer.to_dict(), **({"prepared": str(where)} if where else {})}))
            elif answer.verdict != "unreadable":  # an unreadable input is said on stderr below, as before
                print(answer.line() + (f"  [model saw {where}]" if where else ""))
    if csv_file:
        pixels, labels, ids, bad_rows = predicting.read_kaggle_csv(Path(csv_file))
        problems += bad_rows
        digits, _ = evaluation.classify(model, pixels.float() / 255.0)
        if len(ids):
            atomic_write_text(out.submission, predicting.submission_csv(ids, digits))
            scored = "" if labels is None else f"; accuracy on its labels {100 * float((digits == labels).float().mean()):.2f}%"
            print(f"wrote {out.submission} ({len(digits)} rows{', bad rows left out' if bad_rows else ''}){scored}")
    for line in problems:
        print(f"main.py: error: {line}", file=sys.stderr)
    return len(problems)


def export_saved(cfg: RunConfig, fmt: str, source: Path) -> exporting.ExportReport:
    """``--export``: the model saved under ``source`` as ``fmt``, written under ``cfg.out_dir`` and checked."""
    exporting.require_packages()
    strategy = model_strategy.get_strategy(cfg.model)
    model = model_strategy.load_trained(strategy.key, source)
    splits = data_utils.load_mnist(cfg.data_dir, verify=cfg.verify)
    paths = ArtifactPaths(strategy.stem, cfg.out_dir)
    return exporting.export(model, fmt, paths.onnx if fmt == "onnx" else paths.onnx_int8, splits["train"], splits["test"])
