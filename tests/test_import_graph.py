"""The import graph of migue, read from the source (ast): no cycle between modules, and no arrow
against the flow manifest -> extractor -> cache -> head between packages."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"common": "migue.common", "cache": "migue.cache", "extractors": "migue.extractors",
            "fusion": "migue.fusion", "synth": "migue.synth", "pipeline": "migue.pipeline"}
# part -> the parts it may import (itself always); a part is a package, or a folder of pipeline/
ALLOWED = {
    "migue.common": set(),
    "migue.cache": {"migue.common"},
    "migue.extractors": {"migue.common"},
    "migue.fusion": {"migue.cache", "migue.common"},
    "migue.pipeline.datasets": {"migue.cache", "migue.common"},  # data reading knows no model
    "migue.synth": {"migue.pipeline.datasets", "migue.common"},  # it writes the release formats
    "migue.pipeline.extraction": {"migue.pipeline.datasets", "migue.extractors", "migue.cache", "migue.common"},
    "migue.pipeline.weights": {"migue.extractors", "migue.cache", "migue.common"},
    "migue.pipeline.orchestration": {"migue.pipeline.datasets", "migue.pipeline.extraction", "migue.synth",
                                     "migue.fusion", "migue.extractors", "migue.cache", "migue.common"},
    "migue.pipeline.cli": {"migue.pipeline.datasets", "migue.pipeline.extraction", "migue.pipeline.orchestration",
                           "migue.pipeline.weights", "migue.synth", "migue.fusion", "migue.extractors",
                           "migue.cache", "migue.common"},
    "migue.pipeline": set(),  # pipeline/__init__.py
}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The migue modules `name` imports anywhere in its file (a package's name for its __init__)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("migue.") and target != name:
                out.add(target)
    return out


def part(module: str) -> str:
    """The part of the architecture a module belongs to (longest ALLOWED prefix)."""
    return max((p for p in ALLOWED if module == p or module.startswith(p + ".")), key=len)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_belongs_to_a_part(graph):
    assert "migue.pipeline.datasets.skeleton" in graph and "migue.cache.units" in graph
    for name in graph:
        part(name)


def test_no_arrow_against_the_flow(graph):
    wrong = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                   if part(b) != part(a) and part(b) not in ALLOWED[part(a)])
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_no_import_cycle(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + [c[0]]) for c in cycles)


def test_the_checker_sees_cycles_and_wrong_arrows():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert part("migue.pipeline.datasets.stgcn_pack") == "migue.pipeline.datasets"
    assert "migue.extractors" not in ALLOWED[part("migue.pipeline.datasets.stgcn")]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)
