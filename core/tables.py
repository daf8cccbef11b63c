"""Small shared pieces of every report: a markdown table, and the mean ± spread of a few seeds' results."""
from __future__ import annotations

import statistics
from typing import Iterable, Sequence


def markdown_table(header: Sequence[str], align: str, rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; ``align`` has one letter per column: ``l`` left, ``r`` right."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value: no spread to speak of)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)
