"""The package's structure (issue 9's rules): no import cycle, counting imports inside functions; no task package
imports smcv.tasks; SAGEMAKER_*/SMCV_* names are spelled only in smcv.contract."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every smcv module `name` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str]:
    """A path start -> ... -> start, or [] when start is on no cycle."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return []


def test_no_import_cycle_counting_imports_inside_functions():
    graph = _graph()
    cycles = [cycle for name in graph if (cycle := _cycle_from(name, graph))]
    assert not cycles, " | ".join(" -> ".join(c) for c in cycles[:3])


def test_no_task_package_imports_the_task_adapters():
    for name, targets in _graph().items():
        if re.match(r"smcv\.(classification|detection|segmentation)(\.|$)", name):
            assert not [t for t in targets if t.startswith("smcv.tasks")], name


def test_environment_names_are_spelled_only_in_the_contract():
    spelled = sorted(name for name, path in _modules().items()
                     if re.search(r"[\"'](SAGEMAKER_|SMCV_)[A-Z0-9_]+[\"']", path.read_text()))
    assert spelled == ["smcv.contract"], spelled
