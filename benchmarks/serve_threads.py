"""The web app's answer to a drawing with one and with two PyTorch threads, quiet and beside a busy process.

    python -m benchmarks.serve_threads --data-dir ../shared/data

Why ``main.py --serve`` reads with one thread (``web.server.INFERENCE_THREADS``): in the browser benchmark
(``bench_serve``) Chromium runs on the same cores. ``web.app.answer`` (decode, clean, all eight models read the
ink) times each of ``--samples`` PENDIGITS drawings (odd rows, drawn as the page's canvas draws them), each
thread count in turn, twice; then again beside a process that keeps one core busy. Prints the median, 90th
percentile and slowest per setting. A probe of a choice, not a figure of the app: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import data_utils
from benchmarks import browser

STROKE = 18  # the draw page's line width, canvas pixels


def drawings(data_dir: Path, count: int) -> list[bytes]:
    """``count`` PENDIGITS trajectories drawn on a page the size of the canvas, as PNG bytes."""
    pngs = []
    for points, _ in browser.pendigits(data_dir, count):
        page = Image.new("L", (browser.PAD, browser.PAD), 255)
        ImageDraw.Draw(page).line(points, fill=0, width=STROKE, joint="curve")
        buffer = io.BytesIO()
        page.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=data_utils.default_data_dir())
    p.add_argument("--samples", type=int, default=80)
    args = p.parse_args()
    from web.app import answer, load_zoo, warm_up  # noqa: PLC0415 - the web stack only for this probe

    pngs = drawings(args.data_dir, args.samples)
    zoo = load_zoo(["1", "2", "3", "fc", "fc-deep", "fc-bn", "cnn", "cnn-bn"])
    warm_up(zoo)
    times: dict[tuple[bool, int], list[float]] = {}
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(0.5)
            for _ in range(2):
                for threads in (2, 1):
                    torch.set_num_threads(threads)
                    answer(zoo, pngs[0], "warm")
                    for data in pngs:
                        started = time.perf_counter()
                        answer(zoo, data, "drawing")
                        times.setdefault((busy, threads), []).append(1000 * (time.perf_counter() - started))
        finally:
            if hog is not None:
                hog.kill()
    for (busy, threads), spent in times.items():
        spent.sort()
        print(f"{'beside a busy process' if busy else 'quiet'}, {threads} thread{'s' if threads > 1 else ''}: median"
              f" {statistics.median(spent):.0f} ms, 90th percentile {spent[int(0.9 * len(spent))]:.0f} ms,"
              f" slowest {spent[-1]:.0f} ms")


if __name__ == "__main__":
    main()
