"""The zoo side by side: every chosen model trained with several seeds, final-epoch accuracy spread.

``python main.py --model all --seeds 3`` (or ``--model 1,2,3,fc``) writes ``outputs/leaderboard.json``,
``outputs/leaderboard.md`` and ``plots/leaderboard.png``. Accuracies are final-epoch test accuracies,
never a best epoch; the spread is over seeds.
"""
from __future__ import annotations

import io
import json
import statistics
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import config
from core.artifacts import ArtifactPaths, atomic_save_json, atomic_write_bytes, atomic_write_text
from core.tables import markdown_table, mean_std
from model_strategy import get_strategy
from models import anatomy
from training import jobs as side_by_side
from training import runs
from visualization import pyplot

SHARED_SETTINGS = ("optimizer", "scheduler", "lr", "max_lr", "momentum", "weight_decay", "batch_size",
                   "label_smoothing", "augment", "outliers", "subset", "val_split", "val_split_by", "backend",
                   *config.KNOBS)


@dataclass
class Entry:
    key: str
    params: int
    epochs: int
    seeds: list[int]
    final_test_acc: list[float]
    seconds_per_epoch: float
    test_acc_per_epoch: list[list[float]] | None = None  # one list per seed: every run recorded
    metrics_files: list[str] | None = None  # one per seed, relative to the out-dir: each run's whole record
    settings: dict | None = None  # what the seeds shared: optimizer, scheduler, rates, batch size, data subset

    @property
    def mean(self) -> float:
        return mean_std(self.final_test_acc)[0]

    @property
    def std(self) -> float:
        return mean_std(self.final_test_acc)[1] or 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": round(self.mean, 4), "std": round(self.std, 4), "min": min(self.final_test_acc)}


def entry_from_runs(key: str, runs: list[dict], metrics_files: list[str] | None = None) -> Entry:
    """One model's entry from the metrics records of its seeds' runs (and where each record is kept)."""
    per_epoch = [e["seconds"] for r in runs for e in r["history"]["epochs"]]
    return Entry(key=key, params=runs[0]["summary"]["params"], epochs=runs[0]["config"]["epochs"],
                 seeds=[r["config"]["seed"] for r in runs],
                 final_test_acc=[r["summary"]["final_test_acc"] for r in runs],
                 seconds_per_epoch=round(statistics.mean(per_epoch), 2),
                 test_acc_per_epoch=[[e["test_acc"] for e in r["history"]["epochs"]] for r in runs],
                 metrics_files=metrics_files,
                 settings={**{k: runs[0]["config"].get(k) for k in SHARED_SETTINGS},
                           "augment": config.recorded_augment(runs[0]["config"])})


def read(path: Path) -> list[Entry]:
    """The entries of a leaderboard JSON; none when the file is missing or unreadable."""
    try:
        records = json.loads(Path(path).read_text())["entries"]
        names = {f.name for f in fields(Entry)}
        return [Entry(**{k: v for k, v in r.items() if k in names}) for r in records]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def merge(old: list[Entry], new: list[Entry]) -> list[Entry]:
    """``old`` with every model in ``new`` replaced (or added): a leaderboard can be trained model by model."""
    fresh = {e.key: e for e in new}
    return [fresh.pop(e.key, e) for e in old] + list(fresh.values())


def markdown(entries: list[Entry]) -> str:
    rows = [(e.key, f"{e.params:,}", e.epochs, (e.settings or {}).get("augment") or "-", f"{e.mean:.2f}% ± {e.std:.2f}",
             f"{min(e.final_test_acc):.2f}%", ",".join(map(str, e.seeds)), f"{e.seconds_per_epoch:.1f}")
            for e in sorted(entries, key=lambda e: -e.mean)]
    table = markdown_table(["model", "parameters", "epochs", "augment", "final test acc (mean ± std)", "min", "seeds",
                            "s/epoch"], "lrrlrrlr", rows)
    return "Final-epoch test accuracy, mean ± std over seeds (never a best epoch).\n\n" + table + "\n"


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: none has a cost as low or lower and a higher accuracy."""
    return [i for i, (cost, acc) in enumerate(points)
            if not any(c <= cost and a > acc or c < cost and a >= acc for c, a in points)]


def plot(entries: list[Entry], title: str) -> bytes:
    """Final accuracy (mean ± std over seeds) against parameters and against MACs per image, both on log
    scales, the Pareto frontier of each drawn and every point labelled: the picture to choose a model by."""
    costs = {e.key: anatomy.analyse(get_strategy(e.key).builder()) for e in entries}
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    for ax, (label, cost) in zip(axes, [("parameters", lambda e: costs[e.key].params),
                                        ("multiply-accumulates per image", lambda e: costs[e.key].macs)]):
        points = [(cost(e), e.mean) for e in entries]
        front = sorted(pareto(points), key=lambda i: points[i][0])
        for i, e in enumerate(entries):
            ax.errorbar(points[i][0], e.mean, yerr=e.std, fmt="o", capsize=4,
                        color="tab:red" if i in front else "tab:gray")
            ax.annotate(e.key, points[i], textcoords="offset points", xytext=(6, 4))
        ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post", color="tab:red",
                alpha=0.6, label="Pareto frontier: nothing cheaper is as accurate")
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (log scale)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[0].set_ylabel("final-epoch test accuracy (%), mean ± std over seeds")
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write(entries: list[Entry], out_dir: Path | str | None) -> list[Path]:
    """``outputs/leaderboard.json``, ``outputs/leaderboard.md`` and ``plots/leaderboard.png`` under ``out_dir``.

    Models already on the leaderboard there and not in ``entries`` keep their rows.
    """
    base = ArtifactPaths("leaderboard", out_dir).base
    json_path, md_path = base / "outputs" / "leaderboard.json", base / "outputs" / "leaderboard.md"
    png_path = base / "plots" / "leaderboard.png"
    entries = merge(read(json_path), entries)
    atomic_write_text(json_path, json.dumps({"entries": [e.to_dict() for e in entries]}, indent=2) + "\n")
    atomic_write_text(md_path, markdown(entries))
    seeds = max(len(e.seeds) for e in entries)
    atomic_write_bytes(png_path, plot(entries, f"MNIST zoo: final test accuracy over {seeds} seed(s)"))
    return [json_path, md_path, png_path]


def train(keys: list[str], seeds: int, given: dict, device: str, at_once: bool = False, jobs: int = 1,
          events: bool = True) -> list[Path]:
    """Each model with ``seeds`` seeds from ``given["seed"]``: one after the other; ``at_once``, as one
    network (``seeds_at_once``); or, ``jobs`` > 1, up to that many at a time in processes of their own
    (``jobs.train_side_by_side_and_save``). The first seed's run writes the usual artifacts, every seed's
    metrics record is kept as ``outputs/<stem>_seed<N>_metrics.json``. The leaderboard is rewritten after
    every model, so progress survives an interrupt."""
    out_dir = given.get("out_dir")
    first_seed = 1 if given.get("seed") is None else given["seed"]
    entries, paths = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for key in keys:
            cfgs = [config.resolve(key, {**given, "seed": seed,
                                         "out_dir": out_dir if seed == first_seed else str(Path(scratch) / f"seed{seed}")},
                                   device) for seed in range(first_seed, first_seed + seeds)]
            seeds_named, trained = f"seeds {first_seed}-{first_seed + seeds - 1}", None
            if at_once:
                print(f"model {key}: {seeds_named} at once, as one network")
                trained = iter(runs.train_together_and_save(cfgs, events=events))
            elif jobs > 1:
                print(f"model {key}: {seeds_named}, {min(jobs, seeds)} at a time in processes of their own"
                      f" ({side_by_side.threads_per_job(jobs)} thread(s) each); each seed's result follows when all are done")
                trained = iter(side_by_side.train_side_by_side_and_save(cfgs, jobs, events))
            records, files = [], []
            for cfg in cfgs:
                seed = cfg.seed
                records.append(next(trained) if trained is not None else runs.train_and_save(cfg, events=events))
                kept = ArtifactPaths(f"{get_strategy(key).stem}_seed{seed}", out_dir).metrics
                atomic_save_json(kept, records[-1])
                files.append(str(kept.relative_to(kept.parents[1])))
                print(f"model {key}, seed {seed}: final test accuracy {records[-1]['summary']['final_test_acc']:.2f}%;"
                      f" its record: {kept}" + ("" if seed == first_seed else " (its weights are not kept)"))
            entries.append(entry_from_runs(key, records, files))
            paths = write(entries, out_dir)
    return paths
