"""The house keeps its shape: each folder imports only the layers below it, and nothing imports in a circle.

Read from the source (every `import`, at the top of a module or inside a function), so a lazy
import that points the wrong way counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lab", "app")

# What each part of the project may import from the project (a module may always import its own folder).
# Reading down: the page -> app -> lab; in lab, runs -> training -> data -> config, with the history
# (epoch rows and their statistics, pure Python) just above config.
ALLOWED = {
    "lab": (),
    "lab.knobs": (),
    "lab.config": ("lab.knobs",),
    "lab.errors": (),
    "lab.files": (),
    "lab.data": ("lab.config", "lab.knobs", "lab.errors"),
    "lab.training": ("lab.data", "lab.config", "lab.knobs", "lab.errors", "lab.history", "lab.files"),
    "lab.history": ("lab.config", "lab.knobs"),
    "lab.runs": ("lab.training", "lab.data", "lab.config", "lab.knobs", "lab.errors", "lab.history", "lab.files"),
    "lab.figures": ("lab.history", "lab.config", "lab.knobs"),
    "lab.presets": ("lab.config", "lab.knobs"),
    "lab.recordings": ("lab.history", "lab.presets", "lab.config", "lab.knobs"),
    "lab.cli": ("lab",),
    "lab.__main__": ("lab.cli",),
    "app": ("lab",),
    "streamlit_app": ("app", "lab"),
}
MAX_LINES = 500


def project_modules() -> dict[str, Path]:
    modules = {"streamlit_app": REPO / "streamlit_app.py"}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(path: Path, name: str) -> set[str]:
    """Every module `path` imports, by absolute name (relative imports resolved)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def owner(name: str) -> str:
    """The entry of ALLOWED that rules module `name`: its longest matching prefix."""
    matches = [key for key in ALLOWED if name == key or name.startswith(key + ".")]
    return max(matches, key=len)


def project_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {
        name: {target for target in imports_of(path, name) if target in modules and target != name}
        for name, path in modules.items()
    }


def test_each_part_imports_only_the_layers_below_it():
    wrong = []
    for name, targets in project_graph().items():
        rule = owner(name)
        for target in targets:
            own = target == rule or target.startswith(rule + ".")
            allowed = any(target == ok or target.startswith(ok + ".") for ok in ALLOWED[rule])
            if not (own or allowed or target in ("lab", "app")):
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_no_module_imports_in_a_circle():
    graph = project_graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            pytest.fail("import circle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_lab_never_imports_streamlit_and_the_page_never_imports_tensorflow():
    wrong = []
    for name, path in project_modules().items():
        heavy = ("streamlit",) if name.startswith("lab") else ("tensorflow", "keras")
        for target in imports_of(path, name):
            if target.split(".")[0] in heavy:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_no_module_of_the_page_app_or_lab_is_longer_than_the_house_allows():
    long = {
        name: n for name, path in project_modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines: {long}"
    assert len((REPO / "streamlit_app.py").read_text().splitlines()) <= 150, "the entry stays thin"
