"""The apps import each other in one direction: no loop of imports crosses from one app into another.

A loop inside one app is allowed (its services queue its own tasks, imported inside a function). The
graph counts every import, at module level or inside a function, of the modules under grader/ and
annotations/; an app is a package with an apps.py, and a module belongs to the innermost one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("grader", "annotations")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def _imported(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The modules of the tree that ``name`` (at ``path``) imports anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    yield f"{source}.{alias.name}"
                elif source in modules:
                    yield source


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set(_imported(name, path, modules)) - {name} for name, path in modules.items()}


def app_of(module: str, apps: set[str]) -> str:
    return max((app for app in apps if module == app or module.startswith(app + ".")), key=len)


def loops(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def test_no_loop_of_imports_crosses_from_one_app_into_another():
    graph = import_graph()
    apps = {_module_name(path.parent / "__init__.py") for package in PACKAGES for path in (ROOT / package).rglob("apps.py")}

    crossing = [sorted(loop) for loop in loops(graph) if len({app_of(module, apps) for module in loop}) > 1]

    assert crossing == []


def test_the_loop_finder_sees_a_loop_across_apps_and_allows_one_inside_an_app():
    graph = {"a.services": {"a.tasks", "b.services"}, "a.tasks": {"a.services"}, "b.services": {"b.selectors"},
             "b.selectors": {"a.services"}, "c.services": {"c.tasks"}, "c.tasks": {"c.services"}}

    assert sorted(sorted(loop) for loop in loops(graph)) == [
        ["a.services", "a.tasks", "b.selectors", "b.services"], ["c.services", "c.tasks"]
    ]


def test_the_graph_follows_relative_and_function_level_imports():
    graph = import_graph()

    assert "grader.scans.tasks" in graph["grader.scans.services"]  # imported inside scan_upload_enqueue
    assert "grader.models" in graph["grader.scans.services"]
    assert "grader.scans.services" in graph["grader.scans.tasks"]  # from . import services
