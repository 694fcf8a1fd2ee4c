"""Just enough Dockerfile and .dockerignore reading to check what an image build refers to."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        """Arguments in exec form (JSON array) or shell form, split like the shell would."""
        if self.arguments.startswith("["):
            return json.loads(self.arguments)
        return shlex.split(self.arguments)


def instructions(dockerfile: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return found


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths every COPY/ADD takes (stage copies ``--from`` excluded)."""
    sources: list[str] = []
    for instruction in instructions(dockerfile):
        if instruction.keyword not in {"COPY", "ADD"}:
            continue
        words = instruction.words()
        if any(word.startswith("--from") for word in words):
            continue
        sources += [word for word in words[:-1] if not word.startswith("--")]
    return sources


def build_args(dockerfile: Path) -> dict[str, str | None]:
    """``ARG NAME=default`` declarations (``None`` where there is no default)."""
    args: dict[str, str | None] = {}
    for instruction in instructions(dockerfile):
        if instruction.keyword == "ARG":
            name, equals, default = instruction.arguments.partition("=")
            args[name] = default if equals else None
    return args


def dockerignore_excludes(root: Path, path: str) -> bool:
    """Whether ``root/.dockerignore`` keeps ``path`` out of the build context.

    The last pattern matching the path or one of its parents decides; ``!`` re-includes.
    """
    ignore_file = root / ".dockerignore"
    if not ignore_file.is_file():
        return False
    candidates = [str(PurePosixPath(path))]
    candidates += [str(parent) for parent in PurePosixPath(path).parents if str(parent) != "."]
    excluded = False
    for line in ignore_file.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch(candidate, pattern) for candidate in candidates):
            excluded = not negated
    return excluded
