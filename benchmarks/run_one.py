"""One training run for the benchmarks, in its own process: ``python -m benchmarks.run_one MODEL DEVICE SETTINGS_JSON``.

The epoch records count from this process's start (imports included), so "time to 99.4%" is what a
user waits for. The classic pipeline is ``{"loader": "torchvision", "backend": "none"}``.
"""
from __future__ import annotations

import time

PROCESS_START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

import config  # noqa: E402
from training import runs  # noqa: E402


def entry(model: str, device: str, settings: str) -> int:
    runs.train_and_save(config.resolve(model, json.loads(settings), config.resolve_device(device)),
                        started_at=PROCESS_START)
    return 0


if __name__ == "__main__":
    sys.exit(entry(*sys.argv[1:]))
