"""One training run for the benchmarks: main.py's flags (the classic pipeline is ``--backend none``)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import main  # noqa: E402  (first: its clock starts at import)


def entry(argv: list[str]) -> int:
    args = main.build_parser().parse_args(argv)
    main.run(main.resolve_config(args, main.model_strategy.get_strategy(args.model)))
    return 0


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
