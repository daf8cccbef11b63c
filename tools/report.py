"""The docs' tables (README.md and docs/*.md), generated from committed files (never typed by hand).

    python -m tools.report                   # print the tables of the committed reference models
    python -m tools.report --out-dir runs    # the same for your own runs (results and leaderboard tables)
    python -m tools.report --readme          # rewrite them between their markers in README.md and docs/

models:   the registry's modules (anatomy.py)
results:  outputs/*_metrics.json                      (the committed models)
speed:    benchmarks/results/training_speed.json      (python -m benchmarks.bench_training --json-out ...)
speed-gpu: benchmarks/results/training_speed_gpu.json (the same with --device cuda, on a GPU machine)
leaderboard: outputs/leaderboard.md                  (main.py --model ... --seeds 3)
accuracy: benchmarks/results/accuracy.json            (benchmarks/accuracy.py)
export:   benchmarks/results/export.json              (python -m benchmarks.bench_export ...)
realworld: benchmarks/results/realworld.json          (python -m benchmarks.realworld ...)
time-to-accuracy: benchmarks/results/time_to_accuracy.json (python -m benchmarks.time_to_accuracy ...)
seeds-at-once: benchmarks/results/seeds_at_once*.json (python -m benchmarks.bench_seeds ..., one file per set of seeds)
seeds-bound: benchmarks/results/seeds_bound.json      (python -m benchmarks.seeds_bound --json-out ...)
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import augmentations
import config
import model_strategy
from analysis import external
from benchmarks.accuracy import markdown, summarize
from benchmarks.bench_seeds import summary as seeds_at_once_summary
from benchmarks.common import machine_line
from benchmarks.realworld import summary as realworld_summary
from benchmarks.seeds_bound import summary as seeds_bound_summary
from benchmarks.time_to_accuracy import summary as time_to_accuracy_summary
from cli import flags
from core.artifacts import REFERENCE_ROOT, REPO_ROOT, ArtifactPaths, atomic_write_text
from core.tables import markdown_table
from deploy import reading
from models import anatomy
from training import leaderboard, sweep

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def results_table(root: Path = REFERENCE_ROOT) -> str:
    rows = []
    for key in model_strategy.available_models():
        path = ArtifactPaths(model_strategy.get_strategy(key).stem, root).metrics
        if not path.is_file():
            continue
        m = json.loads(path.read_text())
        c, s, epochs = m["config"], m["summary"], m["history"]["epochs"]
        best = s["best_test_acc_selected_on_test"]
        rows.append((key, f"{s['params']:,}", len(epochs), c["scheduler"], config.recorded_augment(c), c["seed"],
                     f"**{s['final_test_acc']:.2f}%**",
                     f"{best['acc']:.2f}% (epoch {best['epoch']})", f"{s['train_seconds'] / len(epochs):.1f}",
                     c["device"], m["environment"]["torch"]))
    return markdown_table(["model", "params", "epochs", "scheduler", "augment", "seed", "final test acc",
                           "best test acc (selected on test)", "mean s/epoch", "device", "torch"], "lrrllrrrrll", rows)


def speed_table(path: Path = RESULTS_DIR / "training_speed.json") -> str:
    if not path.is_file():
        return "_not measured yet: run the benchmark command above_"
    r = json.loads(path.read_text())
    m = r["machine"]
    cpu, cores = m.get("cpu", m.get("device_name")), m.get("cores", m.get("cpu_count"))  # records before/after provenance.py
    if r.get("device") == "cuda":
        where = f"{m.get('gpu', m.get('device_name'))} (CUDA), host {m.get('cpu', 'CPU')}, {cores} cores"
    else:
        where = f"{cpu}, {cores} cores"
    rounds = r.get("rounds", 1)
    runs = ("one run of each pipeline" if rounds == 1 else
            f"{rounds} rounds of the two pipelines alternating, times the medians over the rounds")
    lines = [f"Model {r['model']}, {r['epochs']} epochs, batch {r['batch_size']}, seed {r['seed']}, {runs};"
             f" {where}, torch {m['torch']}, Python {m['python']}, {m['date']}.", ""]
    cells = []
    for name, p in r["pipelines"].items():
        reach = "not reached" if p["time_to_99.4_s"] is None else f"{p['time_to_99.4_s']:.1f} (epoch {p['epoch_reaching_99.4']})"
        span = "-" if p.get("epochs_wall_s") is None else f"{p['epochs_wall_s']:.1f}"
        last = "-" if p.get("to_last_epoch_s") is None else f"{p['to_last_epoch_s']:.1f}"
        cells.append((name, f"{p['median_epoch_s']:.2f}", f"{p['images_per_s']:,.0f}", span, last, reach,
                      f"{p['final_test_acc']:.2f}%", f"{p['peak_rss_mb']:,}", f"{p['peak_pss_mb']:,}"))
    lines.append(markdown_table(["pipeline", "median epoch (s)", "images/s", "all epochs, first start to last end (s)",
                                 "process start to last epoch end (s)", "s from process start to first epoch ≥ 99.4%",
                                 "final test acc", "peak RSS, all processes (MB)", "peak PSS (MB)"], "lrrrrrrrr", cells))
    if "epoch_time_ratio_project_over_classic" in r:
        lines += ["", f"Epoch time, project / classic: **{r['epoch_time_ratio_project_over_classic']:.3f}**"
                      f" ({r['speedup']:.2f}× faster)."]
    if "matmul_gflops" in r:
        rates = ", ".join(f"{name} {p['training_gflops']:,.1f} GFLOP/s ({100 * p['share_of_matmul_peak']:.0f}%)"
                          for name, p in r["pipelines"].items())
        lines += ["", f"Float rate of a training epoch (6 × MACs per image × images/s) and its share of the"
                      f" {r['matmul_gflops']:,.0f} GFLOP/s that a float32 2048² matrix multiply reaches here: {rates}."]
    return "\n".join(lines)


def accuracy_table(path: Path = RESULTS_DIR / "accuracy.json") -> str:
    if not path.is_file():
        return "_not measured yet: run the accuracy command above_"
    runs = json.loads(path.read_text())["runs"]
    return markdown(summarize(runs))


def _external_records(root: Path) -> list[tuple[str, dict]]:
    """Each registered model's metrics record that holds ``external`` scores (``--evaluate-external``)."""
    found = []
    for key in model_strategy.available_models():
        path = ArtifactPaths(model_strategy.get_strategy(key).stem, root).metrics
        record = json.loads(path.read_text()) if path.is_file() else {}
        if "external" in record:
            found.append((key, record))
    return found


NOT_MEASURED = "_not measured yet: run the --evaluate-external command above_"


def external_table(root: Path = REFERENCE_ROOT) -> str:
    """Accuracy on handwriting the models never saw, from the ``external`` scores in the metrics records."""
    rows, names = [], None
    for key, record in _external_records(root):
        scores = record["external"]["scores"]
        names = names or [f"{s['name']} ({s['images']:,})" for s in scores]
        rows.append((f"`{key}`", f"{record['summary']['final_test_acc']:.2f}%", *(f"{s['accuracy']:.2f}%" for s in scores)))
    if not rows:
        return NOT_MEASURED
    return markdown_table(["model", "MNIST test (10,000)", *names], "l" + "r" * (len(names) + 1), rows)


def external_digits_table(root: Path = REFERENCE_ROOT) -> str:
    """Each true digit's accuracy on the two other writers' sets, per committed model: where they fail."""
    rows = [(f"`{key}`", s["name"].split(" ")[0], *(f"{a:.1f}" for a in s["per_digit"]))
            for key, record in _external_records(root) for s in record["external"]["scores"]
            if s["name"] in (external.SEMEION, external.OPTDIGITS) and s.get("per_digit")]
    if not rows:
        return NOT_MEASURED
    return markdown_table(["model", "set", *map(str, range(10))], "ll" + "r" * 10, rows)


def export_table(path: Path = RESULTS_DIR / "export.json") -> str:
    if not path.is_file():
        return "_not measured yet: run the export benchmark command above_"
    r = json.loads(path.read_text())
    m = r["machine"]
    rows = []
    for e in r["models"]:
        base = e["pytorch"]["images_per_s"]
        rows.append((f"`{e['model']}`", f"{e['pytorch']['size_bytes'] / 1024:,.1f}", f"{e['onnx']['size_bytes'] / 1024:,.1f}",
                     f"{e['int8']['size_bytes'] / 1024:,.1f} ({e['int8']['size_bytes'] / e['onnx']['size_bytes']:.2f}×)",
                     f"{e['pytorch']['test_acc']:.2f}%", f"{e['onnx']['test_acc']:.2f}%",
                     f"{e['int8']['test_acc']:.2f}% ({e['int8']['test_acc'] - e['onnx']['test_acc']:+.2f})",
                     f"{base:,}", f"{e['onnx']['images_per_s']:,} ({e['onnx']['images_per_s'] / base:.1f}×)",
                     f"{e['int8']['images_per_s']:,} ({e['int8']['images_per_s'] / base:.1f}×)"))
    table = markdown_table(["model", "safetensors KB", "ONNX KB", "int8 KB (of ONNX)", "PyTorch acc", "ONNX acc",
                            "int8 acc (vs float)", "PyTorch img/s", "ONNX img/s", "int8 img/s"], "lrrrrrrrrr", rows)
    return (f"{m.get('device_name', 'CPU')}, {r['threads']} threads, batch {r['batch_size']}, torch {m['torch']},"
            f" {m['date']}; test accuracy on all 10,000 MNIST test images; one run, the three interleaved.\n\n{table}")


def realworld_table(path: Path = RESULTS_DIR / "realworld.json") -> str:
    if not path.is_file():
        return "_not measured yet: run the real-world benchmark command above_"
    runs = json.loads(path.read_text())["runs"]
    m = runs[0]["machine"]

    def span(dates: set[str]) -> str:
        ordered = sorted(dates)
        return ordered[0] if len(ordered) == 1 else f"{ordered[0]} to {ordered[-1]}"

    trained = span({r["machine"]["date"] for r in runs})
    scored = span({r.get("scored", r["machine"])["date"] for r in runs})
    return (f"{m.get('device_name', 'CPU')}, {m['cpu_count']} cores, torch {m['torch']}; trained {trained}, scored {scored};"
            f" final-epoch weights, {runs[0]['epochs']} epochs, all 60,000 training digits, mean ± std over seeds."
            f"\n\n{realworld_summary(runs)}")


def time_to_accuracy_table(results: Path = RESULTS_DIR) -> str:
    """Every ``time_to_accuracy*.json`` (one per recipe measured), in name order."""
    paths = sorted(results.glob("time_to_accuracy*.json"))
    if not paths:
        return "_not measured yet: run the time-to-accuracy command above_"
    return "\n\n".join(time_to_accuracy_summary(json.loads(path.read_text())) for path in paths)


def seeds_at_once_table(results: Path = RESULTS_DIR) -> str:
    """Every ``seeds_at_once*.json`` (one per set of seeds), in name order."""
    paths = sorted(results.glob("seeds_at_once*.json"))
    if not paths:
        return "_not measured yet: run the seeds-at-once command above_"
    return "\n\n".join(seeds_at_once_summary(json.loads(path.read_text())) for path in paths)


def seeds_bound_table(path: Path = RESULTS_DIR / "seeds_bound.json") -> str:
    if not path.is_file():
        return "_not measured yet: run the seeds-bound command above_"
    return seeds_bound_summary(json.loads(path.read_text()))


def leaderboard_table(root: Path = REFERENCE_ROOT) -> str:
    path = Path(root) / "outputs" / "leaderboard.md"
    return path.read_text().strip() if path.is_file() else "_not trained yet: run the leaderboard command above_"


def zoo_table(root: Path = REFERENCE_ROOT) -> str:
    """The README's models table: parameters, MACs and the reference accuracy (final epoch, mean over the
    leaderboard's seeds) of every registered model."""
    board = {e.key: e for e in leaderboard.read(Path(root) / "outputs" / "leaderboard.json")}
    rows = []
    for key, strategy in model_strategy.MODELS.items():
        a = anatomy.analyse(strategy.builder())
        entry = board.get(key)
        acc = "-" if entry is None else f"{entry.mean:.2f}% ± {entry.std:.2f} ({len(entry.seeds)} seeds)"
        aliases = ", ".join(f"`{x}`" for x in strategy.aliases)
        rows.append((f"`{key}`" + (f" ({aliases})" if aliases else ""), strategy.family, f"{a.params:,}", f"{a.macs:,}",
                     acc, strategy.description.replace("|", "\\|")))
    return markdown_table(("model", "family", "parameters", "MACs/image", "final test accuracy", "what it is"),
                          "llrrrl", rows)


def cli_table() -> str:
    """Every flag of ``main.py`` by argument group, from the parser itself (``cli.flags``): what ``--help`` says."""
    parser = flags.build_parser()
    exclusive = {a.dest for g in parser._mutually_exclusive_groups for a in g._group_actions}
    blocks = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS and a.dest != "help"]
        if not actions:
            continue
        rows = []
        for a in actions:
            names = " / ".join(f"`{o}`" for o in a.option_strings)
            if a.choices is not None and a.nargs != 0:
                names += " " + "\\|".join(map(str, a.choices)) if len(a.choices) <= 5 else f" {a.dest.upper()}"
            elif a.metavar or (a.nargs != 0 and a.option_strings):
                names += f" {a.metavar or a.dest.upper()}"
            default = "" if a.default in (None, False, argparse.SUPPRESS) or a.nargs == 0 else f"`{a.default}`"
            meaning = (a.help or "").replace("|", "\\|") + (" (one of the exclusive modes)" if a.dest in exclusive else "")
            rows.append((names, default, meaning))
        title = f"**{group.title}**" + (f": {group.description}" if group.description else "")
        blocks.append(title + "\n\n" + markdown_table(("flag", "default", "meaning"), "lll", rows))
    return "\n\n".join(blocks)


def augmentations_table() -> str:
    """Every augmentation strategy and its first docstring line (``augmentations.AUGMENTATIONS``)."""
    rows = [(f"`{name}`", a.description.replace("``", "`") or "the images as they are",
             "yes" if name in augmentations.CLASSIC else "") for name, a in augmentations.AUGMENTATIONS.items()]
    return markdown_table(("--augment", "what it does to a training batch", "classic loader too"), "lll", rows)


def models_table() -> str:
    """Figures of merit of every registered model, computed from its modules (``anatomy.py``)."""
    rows = []
    for key in model_strategy.available_models():
        strategy = model_strategy.get_strategy(key)
        a = anatomy.analyse(strategy.builder())
        spatial = [layer for layer in a.layers if layer.kind == "Conv2d" and layer.output[1:] != (1, 1)]
        rf = f"{spatial[-1].receptive_field}×{spatial[-1].receptive_field}" if spatial else "-"
        rows.append((f"`{key}`", strategy.family, f"{a.params:,}", f"{a.macs:,}", f"{a.weights_kb:,.1f}", rf))
    return markdown_table(["model", "family", "parameters", "MACs per image (forward)", "weights (KB)",
                           "receptive field of the last spatial conv"], "llrrrr", rows)


def serve_table(path: Path = RESULTS_DIR / "serve.json") -> str:
    """The web app measured in a real browser (``benchmarks/bench_serve.py``): latency and drawn pendigits read."""
    if not path.is_file():
        return "_not measured yet: run the web app benchmark command above_"
    r = json.loads(path.read_text())
    lat, srv = r["stroke_to_screen_ms"], r["server_ms"]
    rows = [(f"`{key}`", f"{acc:.1f}%") for key, acc in r["accuracy"].items()]
    return (f"{machine_line(r['machine'])}, Chromium {r['chromium']} (headless); `{r['command']}`.\n\n"
            f"From the end of a stroke to all {len(r['accuracy'])} answers on screen: median {lat['median']:.0f} ms,"
            f" 90th percentile {lat['p90']:.0f} ms, slowest {lat['max']:.0f} ms over {r['samples']} strokes; of which"
            f" the server's preparation and {len(r['accuracy'])} inferences: median {srv['median']:.0f} ms,"
            f" 90th percentile {srv['p90']:.0f} ms.\n\n"
            + markdown_table(("model", f"drawn pendigits read right (of {r['samples']})"), "lr", rows))


def numbers_table(path: Path = RESULTS_DIR / "numbers.json") -> str:
    """How often each committed model reads a written number exactly (``benchmarks/numbers.py``)."""
    if not path.is_file():
        return "_not measured yet: run the numbers benchmark command above_"
    r = json.loads(path.read_text())
    first = next(iter(r["models"].values()))
    header = ["model", *(f"{s['kind']}, {s['length']} digit{'s' if s['length'] > 1 else ''} (of {s['numbers']})"
                         for s in first)]
    said = {True: "split right", False: "kept one digit"}
    rows = [[f"`{key}`", *(f"{s['exact']:.1f}% ({s['count_right']:.1f}% {said[s['length'] > 1]})" for s in scores)]
            for key, scores in r["models"].items()]
    return (f"{machine_line(r['machine'])}; `{r['command']}` ({r['seconds']} s); exact reads, each with the share"
            " split into the right count of digits (a single digit: kept as one).\n\n"
            + markdown_table(header, "l" + "r" * len(first), rows))


def calibration_table(root: Path = REFERENCE_ROOT) -> str:
    """Each committed model's temperature and calibration error before and after it (``--calibrate``'s records)."""
    rows, names = [], None
    for key, strategy in model_strategy.MODELS.items():
        path = ArtifactPaths(strategy.stem, root).calibration
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        names = names or [s["before"]["name"] for s in record["sets"]]
        rows.append([f"`{key}`", f"{record['temperature']:.2f}",
                     *(f"{s['before']['ece']:.2f}% → {s['after']['ece']:.2f}%" for s in record["sets"])])
    if not rows:
        return "_not measured yet: run the calibration command above_"
    return ("Expected calibration error (15 bins) before → after the temperature; the first two sets are the ones it"
            " was fitted on.\n\n" + markdown_table(["model", "temperature", *names], "lr" + "r" * len(names), rows))


def rejection_table(path: Path = RESULTS_DIR / "rejection.json") -> str:
    """How each committed model says "not a digit" on the test sets (``benchmarks/rejection.py``)."""
    if not path.is_file():
        return "_not measured yet: run the rejection benchmark command above_"
    r = json.loads(path.read_text())
    kinds = list(r["sets"])
    def name(key: str) -> str:
        return f"ensemble `{key.replace('+', ',')}`" if "+" in key else f"`{key}`"

    rows = [[name(row["model"]), f"{row['mnist_accuracy']:.2f}%", f"{row['ece_mnist']:.2f}",
             f"{row['ece_semeion']:.2f}" if "ece_semeion" in row else "-",
             f"{row['threshold']:.3f}", f"{row['mnist_rejected']:.2f}%",
             reading.accepted_read_right(row),
             f"{row['semeion_rejected']:.2f}%" if "semeion_rejected" in row else "-",
             f"**{reading.overall(row, r['sets']):.1f}%**",
             *(f"{row['non_digits'][k]:.1f}%" for k in kinds),
             f"{row['auroc']:.3f}"] for row in r["rows"]]
    header = ["model", "MNIST test acc", "ECE MNIST", "ECE SEMEION", "threshold", "MNIST test rejected",
              "accepted read right", "SEMEION rejected",
              "test non-digits rejected", *(f"{k} ({r['sets'][k]})" for k in kinds), "AUROC"]
    score = ("the digit detector's digit probability (`outputs/digit_detector.json`) times the calibrated top"
             " probability" if r.get("detector") else "the calibrated top probability")
    return (f"{machine_line(r['machine'])}; `{r['command']}`; the score: {score}; each model's threshold on it (1% of"
            " the development digits) from its `--calibrate` record; AUROC of that score, MNIST's test digits"
            " against the test non-digits; accuracy and ECE the model's own; ECE in points, calibrated, 15 bins.\n\n"
            + markdown_table(header, "l" + "r" * (len(header) - 1), rows))


def ablation_table(name: str, results: Path = RESULTS_DIR) -> str:
    """An ablation sweep's table (``training.sweep.table``) from its results, copied to
    ``benchmarks/results/ablation_<name>.json``; a line saying so while it is not there."""
    path = results / f"ablation_{name}.json"
    if not path.exists():
        return f"(not run yet: `{path.relative_to(REPO_ROOT)}` is missing)"
    found = json.loads(path.read_text())
    minutes, trials = found["seconds"] / 60, len(found["trials"])
    return (f"{machine_line(found['machine'])}; `python main.py --sweep sweeps/ablation_{name}.toml --data-dir"
            f" ../shared/data`; {trials} trial{'' if trials == 1 else 's'} × {len(found['seeds'])} seeds,"
            f" {minutes:.0f} minutes of training (the runs' own clocks); validation: 10,000 held-out training digits"
            " of whole writers.\n\n"
            + sweep.table(found).rstrip())


# Each table from the root holding the trained models' files (the benchmarks' records are the repository's own).
TABLES = {"models": lambda root: models_table(), "results": results_table, "leaderboard": leaderboard_table,
          "speed": lambda root: speed_table(), "speed-gpu": lambda root: speed_table(RESULTS_DIR / "training_speed_gpu.json"),
          "accuracy": lambda root: accuracy_table(), "export": lambda root: export_table(),
          "external": external_table, "external-digits": external_digits_table, "realworld": lambda root: realworld_table(),
          "time-to-accuracy": lambda root: time_to_accuracy_table(),
          "seeds-at-once": lambda root: seeds_at_once_table(), "seeds-bound": lambda root: seeds_bound_table(),
          "cli": lambda root: cli_table(),
          "serve": lambda root: serve_table(),
          "numbers": lambda root: numbers_table(), "calibration": calibration_table,
          "rejection": lambda root: rejection_table(),
          "augmentations": lambda root: augmentations_table(),
          "ablation-fc": lambda root: ablation_table("fc"), "ablation-v3": lambda root: ablation_table("v3"),
          "ablation-v3-no-bn": lambda root: ablation_table("v3_no_bn"),
          "zoo": zoo_table}
DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]  # where the tables live


def marker(name: str) -> re.Pattern:
    """The block between a table's markers, in whichever document holds it."""
    return re.compile(rf"<!-- {re.escape(name)}:start -->\n(.*?)\n<!-- {re.escape(name)}:end -->", re.S)


def homes() -> dict[str, Path]:
    """Each table's one document; a table with no home, or with two, is an error."""
    found: dict[str, list[Path]] = {name: [d for d in DOCUMENTS if marker(name).search(d.read_text())] for name in TABLES}
    wrong = {name: places for name, places in found.items() if len(places) != 1}
    if wrong:
        raise SystemExit("each table needs markers in exactly one document: "
                         + "; ".join(f"{n} in {len(p)}" for n, p in wrong.items()))
    return {name: places[0] for name, places in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", "--docs", dest="readme", action="store_true",
                        help="rewrite the tables in README.md and docs/*.md (reference models only)")
    parser.add_argument("--out-dir", type=Path, default=REFERENCE_ROOT,
                        help="root holding outputs/ (default: the committed reference models; runs/ holds yours)")
    args = parser.parse_args()
    if args.readme and args.out_dir.resolve() != REFERENCE_ROOT:
        parser.error("--readme describes the committed reference models; leave out --out-dir")
    if not args.readme:
        for name, make in TABLES.items():
            print(f"## {name}\n\n{make(args.out_dir)}\n")
        return
    for document in sorted(set(homes().values())):
        text = document.read_text()
        for name, make in TABLES.items():
            block = f"<!-- {name}:start -->\n{make(REFERENCE_ROOT)}\n<!-- {name}:end -->"
            text = marker(name).sub(lambda _, block=block: block, text)  # a function: tables may hold backslashes
        if text != document.read_text():
            atomic_write_text(document, text)
            print(f"updated {document.relative_to(REPO_ROOT)}")

if __name__ == "__main__":
    main()
