"""The README's results table, generated from the committed metrics files (never typed by hand).

    python report.py            # print the table
    python report.py --readme   # rewrite the table between the markers in README.md
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import model_strategy
from artifacts import REPO_ROOT, ArtifactPaths, atomic_write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"


def results_table(root: Path = REPO_ROOT) -> str:
    rows = ["| model | params | epochs | scheduler | seed | final test acc | best test acc (selected on test) | s/epoch | device | torch |",
            "|---|---:|---:|---|---:|---:|---:|---:|---|---|"]
    for key in model_strategy.available_models():
        path = ArtifactPaths(model_strategy.get_strategy(key).stem, root).metrics
        if not path.is_file():
            continue
        m = json.loads(path.read_text())
        c, s, epochs = m["config"], m["summary"], m["history"]["epochs"]
        best = s["best_test_acc_selected_on_test"]
        rows.append(f"| {key} | {s['params']:,} | {len(epochs)} | {c['scheduler']} | {c['seed']} |"
                    f" **{s['final_test_acc']:.2f}%** | {best['acc']:.2f}% (epoch {best['epoch']}) |"
                    f" {s['train_seconds'] / len(epochs):.1f} | {c['device']} | {m['environment']['torch']} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args()
    table = results_table()
    if not args.readme:
        print(table)
        return
    readme = REPO_ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    atomic_write_text(readme, pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
