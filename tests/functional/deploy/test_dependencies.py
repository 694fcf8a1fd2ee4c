"""Every third-party module the project imports comes from a distribution it declares.

A module that only arrives as another package's dependency (PyYAML through cfn-lint)
breaks the day that package stops needing it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.functional.deploy.sources import ROOT

SOURCES = ("pixsearch", "functions", "webapp", "tests", "bench", "events")
OWN = {"pixsearch", "functions", "tests", "bench"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def declared() -> set[str]:
    """Distributions named anywhere in pyproject.toml: dependencies, extras, groups."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    for group in pyproject.get("dependency-groups", {}).values():
        requirements += [item for item in group if isinstance(item, str)]
    return {_name(requirement) for requirement in requirements}


def imported() -> dict[str, Path]:
    """Top-level modules imported by the project's sources (first file importing each)."""
    found: dict[str, Path] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            siblings = {p.stem for p in path.parent.glob("*.py")}
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN | siblings:
                        found.setdefault(top, path.relative_to(ROOT))
    return found


def test_every_imported_distribution_is_declared() -> None:
    distributions = packages_distributions()
    names = declared()
    undeclared = {
        module: str(path)
        for module, path in imported().items()
        if not {_name(d) for d in distributions.get(module, [module])} & names
    }
    assert undeclared == {}, f"declare these in pyproject.toml: {undeclared}"
