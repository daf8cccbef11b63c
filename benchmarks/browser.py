"""A real browser against a real ``main.py --serve``: shared by the browser tests and ``bench_serve``.

Headless Chromium comes from Debian (``apt-get install chromium``); Playwright drives the installed one and never
downloads a browser of its own. The flags keep Chromium off the network (this machine has none) and out of a
sandbox it cannot have as root.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO
from digits import pendigits as digits_pendigits

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PAD = 280  # the draw page's canvas, in CSS pixels
MARGIN = 40  # pendigits' 0-100 box is drawn inside the canvas with this margin


def chromium() -> str | None:
    """The installed Chromium, if any (``CHROMIUM`` names another)."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser tests cannot run here, in one line; None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -r requirements.txt"
    if chromium() is None:
        return "headless Chromium is missing: apt-get install chromium (docs/serve.md)"
    return None


@dataclass
class Server:
    process: subprocess.Popen
    url: str  # http://127.0.0.1:PORT/
    banner: str


@contextlib.contextmanager
def serve(*flags: str) -> Iterator[Server]:
    """``main.py --serve --port 0 FLAGS`` in a process of its own, until the block ends (then Ctrl-C)."""
    process = subprocess.Popen([sys.executable, "main.py", "--serve", "--port", "0", *flags], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline() + process.stdout.readline()
        found = re.search(r"draw at (\S+)", banner)
        if not found:
            process.kill()
            raise RuntimeError(f"main.py --serve did not start: {banner}{process.stderr.read()}")
        yield Server(process, found.group(1), banner)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def launch(playwright):  # noqa: ANN001, ANN201 - playwright's own types
    return playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)


def pendigits(data_dir: Path, count: int, start: int = 0) -> list[tuple[list[tuple[float, float]], int]]:
    """``count`` pen trajectories of ``PENDIGITS/pendigits.csv`` (a development set), evenly spread over its odd
    rows (the digit detector trains on the even ones) from ``start``: eight points each in canvas pixels (y
    downwards), and the digit."""
    rows = digits_pendigits.paths(data_dir, slice(1, None, 2))
    step = max(1, len(rows) // count)
    picked = [rows[(start + i * step) % len(rows)] for i in range(count)]
    scale = (PAD - 2 * MARGIN) / 100
    return [([(MARGIN + scale * x, MARGIN + scale * y) for x, y in points], label) for points, label in picked]


def draw(page, points: list[tuple[float, float]], steps: int = 6) -> None:  # noqa: ANN001
    """One stroke through ``points`` (canvas pixels) with the mouse: pointer events, as a person's hand makes them."""
    box = page.locator("#pad").bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x0 + x, y0 + y, steps=steps)
    page.mouse.up()


def answered(page, count: int) -> dict:  # noqa: ANN001
    """Wait until the page has shown its ``count``-th answer; the payload (or the error) it showed."""
    page.wait_for_selector(f'body[data-answered="{count}"]', state="attached", timeout=30_000)
    return page.evaluate("window.zoo.last")


def clear(page) -> None:  # noqa: ANN001
    page.click("#clear")
