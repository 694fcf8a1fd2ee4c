"""Each function's code imports only what its dependency group (plus the core) installs.

An import-graph check: from a function's entry point, every ``pixsearch`` module
it can reach is read (imports inside functions too, since they run later), and
every third-party import found must belong to a distribution that the core
dependencies or the function's group install, directly or through their own
requirements. An import outside the group is allowed only under
``try: ... except ModuleNotFoundError`` (or ``ImportError``), i.e. where the
code says what to install instead of failing obscurely; ``if TYPE_CHECKING:``
blocks never run.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.functional.deploy.sources import ROOT

ENTRY_POINTS = {
    "functions/download/app.py": "download",
    "functions/embed/app.py": "embed",
    "functions/index/app.py": "index",
    "functions/search/app.py": "search",
    "functions/search/local.py": "search",
}
GUARDS = {"ImportError", "ModuleNotFoundError"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


@cache
def _requires(distribution: str) -> frozenset[str]:
    """What an installed distribution requires when installed without extras."""
    found = set()
    for text in metadata.requires(distribution) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            found.add(_name(text))
    return frozenset(found)


def _closure(requirements: list[str]) -> set[str]:
    """Distributions a ``pip install`` of these requirements brings, own extras followed."""
    extras = _project()["optional-dependencies"]
    todo, seen = list(requirements), set()
    while todo:
        requirement = Requirement(todo.pop())
        name = _name(str(requirement))
        if name == "pixsearch":
            todo += [r for extra in requirement.extras for r in extras[extra]]
            continue
        for extra in requirement.extras:
            todo += [r for r in metadata.requires(name) or [] if f'extra == "{extra}"' in r]
        if name not in seen:
            seen.add(name)
            todo += sorted(_requires(name))
    return seen


def _allowed(group: str) -> set[str]:
    return _closure([*_project()["dependencies"], *_project()["optional-dependencies"][group]])


def _unguarded_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(dotted module, line) of every import that can run, outside import guards."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Try):
            caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            inner = (
                guarded
                or bool(caught & GUARDS)
                or any(name in GUARDS for c in caught for name in re.findall(r"\w+", c))
            )
            for child in node.body:
                visit(child, inner)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        if not guarded:
            if isinstance(node, ast.Import):
                found.extend((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.module, node.lineno))
                found.extend((f"{node.module}.{a.name}", node.lineno) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return found


def _module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _third_party(entry: Path) -> dict[str, str]:
    """Top-level third-party names reachable from ``entry`` -> where one is imported."""
    found: dict[str, str] = {}
    todo, seen = [entry], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted, line in _unguarded_imports(ast.parse(path.read_text())):
            top = dotted.split(".")[0]
            if top == "pixsearch":
                parts = dotted.split(".")
                for end in range(1, len(parts) + 1):
                    module = _module_file(".".join(parts[:end]))
                    if module is not None:
                        todo.append(module)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, f"{path.relative_to(ROOT)}:{line}")
    return found


@pytest.mark.parametrize(("entry", "group"), ENTRY_POINTS.items())
def test_function_imports_stay_inside_its_group(entry: str, group: str) -> None:
    owners = metadata.packages_distributions()
    allowed = _allowed(group)
    outside = {
        name: where
        for name, where in _third_party(ROOT / entry).items()
        if not {_name(d) for d in owners.get(name, [name])} & allowed
    }
    assert not outside, f"{entry} reaches imports outside pixsearch[{group}]: {outside}"


def test_the_check_sees_lazy_imports_and_catches_a_stray_one() -> None:
    """The torch runtime is reachable from the embed handler only behind its guard."""
    reached = _third_party(ROOT / "functions/embed/app.py")
    assert "onnxruntime" in reached and "torch" not in reached
    assert "torch" in _third_party(ROOT / "pixsearch/inference/torch_runtime.py")
    assert "torch" not in _allowed("embed") and "onnxruntime" in _allowed("embed")
