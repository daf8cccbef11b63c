"""One training run for the benchmarks: main.py's flags, plus ``--reference-ops`` for the classic model ops."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import main  # noqa: E402  (first: its clock starts at import)


def entry(argv: list[str]) -> int:
    reference = "--reference-ops" in argv
    argv = [a for a in argv if a != "--reference-ops"]
    args = main.build_parser().parse_args(argv)
    strategy = main.model_strategy.get_strategy(args.model)
    cfg = main.resolve_config(args, strategy)
    if reference:
        from benchmarks.common import reference_ops

        main.run(cfg, reference_ops)
    else:
        main.run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
