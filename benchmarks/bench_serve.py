"""The web app as a person meets it: pen trajectories drawn on the canvas of ``main.py --serve`` in headless Chromium.

    python -m benchmarks.bench_serve --samples 300 --data-dir ../shared/data

The committed reference models are served (an empty ``--out-dir``: none of your runs). For each of
``--samples`` pendigits trajectories (a development set of 44 other writers, spread evenly over its odd rows)
the mouse draws the eight points as one stroke; the page posts the canvas, every served model answers,
and the page records the time from the end of the stroke to the answers on screen (the next frame after they
are in the page). Written: ``benchmarks/results/serve.json`` (each model's share read right, the latencies)
and the two screenshots in ``docs/img/``. Pendigits keeps eight points per digit and loses pen lifts, so a
4, 5 or 7 drawn in two strokes comes back joined: these are hard digits, not a measure of MNIST accuracy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks import browser
from benchmarks.common import REPO, machine
from data_utils import default_data_dir

RESULTS = REPO / "benchmarks" / "results" / "serve.json"
SHOTS = REPO / "docs" / "img"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--no-screenshots", action="store_true")
    args = p.parse_args()
    if browser.missing():
        raise SystemExit(browser.missing())
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only once the browser is known to be there

    samples = browser.pendigits(args.data_dir, args.samples)
    right: dict[str, int] = {}
    server_ms: list[float] = []
    with tempfile.TemporaryDirectory() as none, browser.serve("--out-dir", none) as server, sync_playwright() as pw:
        chromium = browser.launch(pw)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        for n, (points, digit) in enumerate(samples, 1):
            browser.draw(page, points)
            payload = browser.answered(page, n)
            server_ms.append(payload["server_ms"])
            for a in payload["answers"]:
                right[a["key"]] = right.get(a["key"], 0) + (a["number"] == str(digit))
            if n < len(samples):
                browser.clear(page)
        latencies = page.evaluate("window.zoo.latencies")
        version = chromium.version
        if not args.no_screenshots:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.check("#saliency")  # the last digit again, with the saliency maps
            browser.answered(page, len(samples) + 1)
            page.screenshot(path=str(SHOTS / "serve-draw.png"), full_page=True)
            page.goto(server.url + "dashboard")
            page.wait_for_selector("body[data-loaded]", state="attached")
            page.locator("details.model").nth(2).locator("summary").click()  # V3 open
            page.wait_for_timeout(800)
            page.screenshot(path=str(SHOTS / "serve-dashboard.png"), full_page=True)
        chromium.close()
    record = {
        "machine": machine(), "chromium": version, "samples": len(samples),
        "command": f"python -m benchmarks.bench_serve --samples {args.samples}",
        "accuracy": {key: round(100 * hits / len(samples), 1) for key, hits in right.items()},
        "stroke_to_screen_ms": {"median": round(statistics.median(latencies), 1),
                                "p90": round(percentile(latencies, 0.9), 1), "max": round(max(latencies), 1)},
        "server_ms": {"median": round(statistics.median(server_ms), 1), "p90": round(percentile(server_ms, 0.9), 1)},
    }
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
