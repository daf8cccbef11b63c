"""MNIST and handwriting the models never saw, per augmentation recipe, over seeds.

    python -m benchmarks.realworld --models 1,2,3 --augments rotation,scanned --seeds 1,2,3 --data-dir ../shared/data

Each run is the README's main command (``main.py --model K --scheduler onecycle --epochs 15``) with
``--augment A --seed S``, trained on all 60,000 training digits like the committed models, in its own
process; ``--jobs 2`` runs two at once with one thread each (on two cores, faster in all than one after
the other with two threads). The final-epoch weights are then scored on MNIST's test set, on SEMEION
and optdigits through ``--predict``'s preparation and on the test set per writer population (``external.py``). Every
finished run is appended to ``benchmarks/results/realworld.json`` at once; a rerun skips runs already
recorded; ``--rescore`` scores the recorded runs' saved weights again. Nothing here selects anything:
the recipe is chosen before, on writer-disjoint validation (``--select``), and these numbers only report it.

    python -m benchmarks.realworld --select --models 3 --augments rotation,scanned,handwriting --data-dir ../shared/data

``--select`` trains each recipe with ``--val-split 6000`` (whole training writers held out) and prints
the final validation accuracy on those writers' digits as they are, as binary 16x16 scans
(``external.binary_scans``, SEMEION's format) and as 8x8 block counts (``external.block_scans``, optdigits'
format), and on the development fonts' digits (``font_digits``: handwriting fonts no recipe trains on):
training data and fonts only, never SEMEION, optdigits or MNIST's test set.

    python -m benchmarks.realworld --check-preparation --data-dir ../shared/data

compares the digits ``--predict`` prepares with MNIST's own (pen width, ink box, ink, grey share; no labels)
and scores V3's ``--select`` runs on the held-out writers' digits drawn with thicker pens.

    python -m benchmarks.realworld --check-renderings --data-dir ../shared/data

hands 1,000 of the held-out writers' digits to ``--predict`` as image files, rendered the way people and
other digit sets make them (``benchmarks/renderings.py``), and scores V3's ``--select`` runs on each.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

import data_utils
from analysis import evaluation, external
from benchmarks import renderings
from benchmarks.common import machine
from core.artifacts import REPO_ROOT, atomic_save_json
from core.tables import markdown_table, mean_std
from deploy import predict
from digits import font_digits, prepare
from model_strategy import load_trained, trained_params

RESULTS = REPO_ROOT / "benchmarks" / "results" / "realworld.json"
VAL_SPLIT = 6000


def train(model: str, augment: str, seed: int, epochs: int, data_dir: str, out: Path, threads: int,
          val_split: int = 0) -> list[str]:
    """Trains one run in its own process; returns its command line."""
    argv = ["main.py", "--model", model, "--scheduler", "onecycle", "--epochs", str(epochs), "--augment", augment,
            "--seed", str(seed), "--val-split", str(val_split), "--data-dir", data_dir, "--out-dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(out.with_suffix(".log"), "w") as log:
        subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return argv


def accuracy(net: torch.nn.Module, digits: Tensor, labels: Tensor) -> float:
    """Percent of ``digits`` (in [0, 1]) that ``net`` reads as ``labels``."""
    return round(100 * float((evaluation.classify(net, digits)[0] == labels).float().mean()), 2)


def score(model: str, out: Path, data_dir: str) -> dict:
    """The run's final-epoch weights on MNIST's test set and on the external sets."""
    splits = data_utils.load_mnist(data_dir)
    net = load_trained(model, out, "cpu")
    test = splits["test"]
    scores = {"MNIST test": accuracy(net, test.images.float() / 255.0, test.labels)}
    scores.update({s.name: s.accuracy for s in external.evaluate_external(net, test, data_dir)})
    return scores


def held_out_writers(data_dir: str, seed: int = 1) -> tuple[Tensor, Tensor]:
    """The digits (uint8) and labels of the training writers ``--val-split 6000`` holds out with ``seed``."""
    splits, qmnist = data_utils.load_mnist(data_dir), data_utils.read_qmnist(data_dir, "train")
    _, held = data_utils.writer_split_indices(qmnist[:, 2], None, VAL_SPLIT, seed)
    return splits["train"].images[held], splits["train"].labels[held]


@functools.lru_cache(maxsize=2)
def held_out_digits(data_dir: str, seed: int) -> dict[str, Tensor]:
    """The held-out writers' digits in [0, 1] as they are and as two other digit sets' scans prepared as
    ``--predict`` prepares them, and their labels: prepared once for all the runs one command scores."""
    images, labels = held_out_writers(data_dir, seed)
    images = images.float() / 255.0
    return {"validation writers": images,
            "validation writers as binary scans": prepare.as_scans(external.binary_scans(images)),
            "validation writers as 8x8 block scans": prepare.as_scans(external.block_scans(images)), "labels": labels}


def development_fonts() -> tuple[Tensor, Tensor]:
    """The development fonts' digits in [0, 1] (prepared as ``--predict`` prepares a file) and their labels."""
    images, labels = font_digits.load("development").digits()
    return images.float() / 255.0, labels


def validation_scores(model: str, out: Path, data_dir: str, seed: int) -> dict:
    """Final weights on the held-out training writers (their digits as they are, and as scans) and on the
    development fonts' digits: hands the run never saw, none from a test set."""
    sets = dict(held_out_digits(data_dir, seed))
    labels, net = sets.pop("labels"), load_trained(model, out, "cpu")
    scores = {name: accuracy(net, digits, labels) for name, digits in sets.items()}
    scores["development fonts"] = accuracy(net, *development_fonts())
    return scores


def quantiles(values: torch.Tensor) -> str:
    return " / ".join(f"{v:.1f}" for v in values.float().quantile(torch.tensor([0.1, 0.5, 0.9])).tolist())


def check_preparation(data_dir: str, select_dir: Path) -> None:
    """How ``prepare.mnistify``'s output compares with MNIST's own digits (no labels used), and how a model
    trained without the held-out writers fares on their digits drawn with thicker pens."""
    splits = data_utils.load_mnist(data_dir)
    semeion, _ = external.load_semeion(data_dir)
    sets = {"MNIST train": splits["train"].images.float() / 255.0, "MNIST test": splits["test"].images.float() / 255.0,
            "SEMEION, prepared": prepare.as_scans(semeion)}
    cells = []
    for name, digits in sets.items():
        ink, grey = digits > 0.1, ((digits > 0.05) & (digits < 0.95)).sum() / (digits > 0.05).sum()
        cells.append((name, quantiles(prepare.pen_width(digits)), quantiles(ink.any(2).sum(1)),
                      quantiles(ink.any(1).sum(1)), quantiles(digits.sum((1, 2))), f"{float(grey):.2f}"))
    print(markdown_table(["digits", "pen width (px)", "ink height", "ink width", "ink mass", "grey share of ink"],
                         "lrrrrr", cells))
    print("\n10th / 50th / 90th percentiles; ink = pixels above 0.1\n")
    images, labels = held_out_writers(data_dir)
    images = images.float() / 255.0
    big = torch.nn.functional.interpolate(images[:, None], scale_factor=4, mode="bilinear", align_corners=False)
    nets = {run.name: load_trained(run.name.split("_")[1], run, "cpu") for run in sorted(select_dir.glob("select_3_*_seed1"))}
    cells = []
    for radius in (0, 2, 4, 6):  # pixels of a 112-pixel drawing: pens up to about 3x MNIST's
        drawn = big if radius == 0 else torch.nn.functional.max_pool2d(big, 2 * radius + 1, stride=1, padding=radius)
        drawn = (drawn[:, 0] > 0.5).float()
        digits = torch.stack([prepare.mnistify(1.0 - d) for d in drawn])  # dark on white, as a user's image
        widths = prepare.pen_width(digits)
        thinned = torch.stack([prepare.mnistify(1.0 - thin_pen(d, float(w))) for d, w in zip(drawn, widths)])
        row = [f"{radius}", f"{float(prepare.pen_width(digits).median()):.2f}"]
        for net in nets.values():
            row += [f"{100 * float((evaluation.classify(net, x)[0] == labels).float().mean()):.2f}" for x in (digits, thinned)]
        cells.append(row)
    columns = [f"{name}{kind}" for name in nets for kind in ("", ", pen thinned")]
    print(markdown_table(["pen dilation (px at 112)", "pen width after mnistify", *columns], "rr" + "r" * len(columns), cells))


def check_renderings(data_dir: str, select_dir: Path, count: int = 1000) -> None:
    """V3's ``--select`` runs on held-out writers' digits handed to ``--predict`` as files, per rendering."""
    images, labels = held_out_writers(data_dir)
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:count]
    nets = {run.name: load_trained(run.name.split("_")[1], run, "cpu") for run in sorted(select_dir.glob("select_3_*_seed1"))}
    kinds = {**renderings.RENDERINGS, **renderings.CROPS, **renderings.LINED, **renderings.DESK}
    cells = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, render in kinds.items():
            gen = torch.Generator().manual_seed(1)
            paths = [render(images[i], Path(scratch) / f"{name}_{i}", gen) for i in chosen.tolist()]
            read, digits, problems = predict.prepare_images(paths)
            position = {path: i for i, path in enumerate(paths)}
            right = labels[chosen][[position[path] for path in read]]
            row = [name, f"{len(problems)}"]
            for net in nets.values():
                said = evaluation.classify(net, digits)[0] if read else torch.zeros(0, dtype=torch.long)
                row.append(f"{100 * float((said == right).sum()) / count:.1f}")
            cells.append(row)
            for path in paths:
                path.unlink()
    print(markdown_table(["rendering", "no digit found", *nets], "lr" + "r" * len(nets), cells))
    print(f"\n% of {count} digits of the held-out writers read right (an image with no digit found counts as wrong)")


def thin_pen(drawing: torch.Tensor, width: float) -> torch.Tensor:
    """A drawing whose prepared digit has a pen ``width`` pixels wide, eroded at its own resolution until the
    prepared pen is MNIST's median (2 pixels) when it is beyond MNIST's 90th percentile (2.8): the
    preparation step that was tried for thick pens and not kept."""
    if width <= 2.8:
        return drawing
    scale = prepare.BOX / max(prepare.ink_box(drawing, drawing > 0).shape)
    size = 2 * round((width - 2.0) / scale / 2) + 1
    return -torch.nn.functional.max_pool2d(-drawing[None, None], size, stride=1, padding=size // 2)[0, 0]


def summary(runs: list[dict]) -> str:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["augment"]), []).append(r)
    cells = []
    for (model, augment), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])

        def cell(name: str) -> str:
            values = [r["scores"][name] for r in rs]
            mean, std = mean_std(values)
            return f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}") + f" (min {min(values):.2f})"
        cells.append((f"`{model}`", f"`{augment}`", ",".join(str(r["seed"]) for r in rs), cell("MNIST test"),
                      cell(external.SEMEION), cell(external.OPTDIGITS), cell(f"MNIST test, {external.SERIES[0]}"),
                      cell(f"MNIST test, {external.SERIES[4]}")))
    return markdown_table(["model", "augment", "seeds", "MNIST test", "SEMEION", "optdigits", "hsf_0", "hsf_4"], "llrrrrrr",
                          cells)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="1,2,3")
    p.add_argument("--augments", default="rotation,scanned")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--data-dir", default=str(data_utils.default_data_dir()))
    p.add_argument("--work-dir", default=str(REPO_ROOT / "runs" / "realworld"), help="where the runs are trained")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each with (cores / jobs) threads")
    p.add_argument("--select", action="store_true", help="recipe selection on held-out training writers (see above)")
    p.add_argument("--report", action="store_true", help="only print the table of recorded runs")
    p.add_argument("--rescore", action="store_true", help="score every recorded run's saved weights again (after a change"
                   " to the evaluation or --predict's preparation) and record when")
    p.add_argument("--check-preparation", action="store_true",
                   help="compare --predict's prepared digits with MNIST's, and thick pens on the --select runs")
    p.add_argument("--check-renderings", action="store_true",
                   help="the --select runs on held-out writers' digits handed to --predict as files, rendered many ways")
    args = p.parse_args()
    path, work = RESULTS, Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = [(m, a, s) for a in args.augments.split(",") for m in args.models.split(",") for s in seeds]

    if args.check_preparation:
        check_preparation(args.data_dir, work)
        return
    if args.check_renderings:
        check_renderings(args.data_dir, work)
        return
    if args.select:
        def select(item: tuple[str, str, int]) -> str:
            model, augment, seed = item
            out = work / f"select_{model}_{augment}_seed{seed}"
            if not trained_params(model, out).is_file():  # a finished run is scored again, not retrained
                train(model, augment, seed, args.epochs, args.data_dir, out, threads, VAL_SPLIT)
            return f"model {model} --augment {augment} seed {seed}: {validation_scores(model, out, args.data_dir, seed)}"
        with ThreadPoolExecutor(args.jobs) as pool:
            for line in pool.map(select, plan):
                print(line, flush=True)
        return

    record = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    done = {(r["model"], r["augment"], r["seed"], r["epochs"]) for r in record["runs"]}
    todo = [item for item in plan if (*item, args.epochs) not in done]

    def run(item: tuple[str, str, int]) -> dict:
        model, augment, seed = item
        out = work / f"{model}_{augment}_seed{seed}"
        argv = train(model, augment, seed, args.epochs, args.data_dir, out, threads)
        return {"model": model, "augment": augment, "seed": seed, "epochs": args.epochs,
                "scores": score(model, out, args.data_dir), "command": "python " + " ".join(argv[:-2]),
                "threads": threads, "machine": machine()}

    if args.rescore:  # the preparation changed, the weights did not: score the recorded runs again
        for r in record["runs"]:
            out = work / f"{r['model']}_{r['augment']}_seed{r['seed']}"
            if not trained_params(r["model"], out).is_file():
                raise SystemExit(f"{out}: no trained weights to score again (train it: leave out --rescore)")
            r["scores"] = score(r["model"], out, args.data_dir)
            r["scored"] = {key: machine()[key] for key in ("git", "date")}
            print(f"model {r['model']} --augment {r['augment']} seed {r['seed']}: {r['scores']}", flush=True)
        atomic_save_json(path, record)
        todo = []
    if not args.report:
        torch.set_num_threads(threads)
        with ThreadPoolExecutor(args.jobs) as pool:
            for result in pool.map(run, todo):
                key = (result["model"], result["augment"], result["seed"], result["epochs"])
                record["runs"] = [r for r in record["runs"] if (r["model"], r["augment"], r["seed"], r["epochs"]) != key]
                record["runs"].append(result)  # one record per run: a rerun replaces the one before
                atomic_save_json(path, record)
                print(f"model {result['model']} --augment {result['augment']} seed {result['seed']}: {result['scores']}",
                      flush=True)
    print(summary(record["runs"]))


if __name__ == "__main__":
    main()
