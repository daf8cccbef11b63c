"""The house rules a newcomer can rely on: few files at the root, layers that import only downwards, no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Read bottom-up; a module may import from its own layer or any layer below it, never above.
LAYERS = [
    {"core"},
    {"models", "acceleration"},
    {"digits"},
    {"lr_schedulers", "optimizers", "augmentations", "model_strategy", "data_utils", "config", "visualization"},
    {"analysis"},
    {"deploy"},
    {"training"},
    {"zoo"},
    {"web"},
    {"cli", "tools"},
    {"main", "hubconf"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
OUTSIDE = {".venv", "tests", "benchmarks", "runs", "data"}


def project_modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in OUTSIDE or any(part.startswith(".") for part in rel.parts):
            continue
        found[".".join(rel.with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of other project modules, deferred ones inside functions included."""
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets |= {base} | {f"{base}.{a.name}" for a in node.names}
        graph[name] = {r for t in targets if (r := resolve(t)) and r != name and not name.startswith(r + ".")}
    return graph


def test_the_root_holds_at_most_twelve_python_files() -> None:
    assert len(list(ROOT.glob("*.py"))) <= 12, sorted(p.name for p in ROOT.glob("*.py"))


def test_every_project_module_has_a_layer() -> None:
    tops = {name.split(".")[0] for name in project_modules()}
    assert tops <= RANK.keys(), f"give these a layer in LAYERS: {sorted(tops - RANK.keys())}"


def test_a_layer_imports_only_from_itself_and_the_layers_below() -> None:
    upward = [f"{m} -> {t}" for m, targets in imports(project_modules()).items() for t in targets
              if RANK[t.split(".")[0]] > RANK[m.split(".")[0]]]
    assert not upward, "imports from a higher layer: " + ", ".join(sorted(upward))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle_among_the_project_modules() -> None:
    assert find_cycles(imports(project_modules())) == []


def test_the_cycle_finder_finds_a_cycle_through_a_deferred_import(tmp_path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "low.py").write_text("def late():\n    from top import helper  # deferred\n    return helper\n")
    (tmp_path / "top.py").write_text("from pkg import low\n\ndef helper():\n    return low\n")
    (tmp_path / "alone.py").write_text("import pkg.low\n")
    modules = {"pkg": tmp_path / "pkg" / "__init__.py", "pkg.low": tmp_path / "pkg" / "low.py",
               "top": tmp_path / "top.py", "alone": tmp_path / "alone.py"}
    assert find_cycles(imports(modules)) == [["pkg.low", "top"]]
