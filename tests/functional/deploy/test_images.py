"""functions/*/Dockerfile: build from files that exist and run handlers that exist."""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from pixsearch.cli import build_parser
from pixsearch.config import Settings
from tests.functional.deploy.dockerfiles import (
    Instruction,
    build_args,
    copy_sources,
    dockerignore_excludes,
    instructions,
)
from tests.functional.deploy.sources import ROOT, resource

FUNCTIONS = ["download", "embed", "index", "search"]
LAMBDA_BASE = "public.ecr.aws/lambda/python:3.11"


def dockerfile(name: str) -> Path:
    return ROOT / "functions" / name / "Dockerfile"


def module_names(path: Path) -> set[str]:
    """The top-level names a module defines or imports."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {  # `name = ...` and `first, second = ...`
                name.id
                for target in node.targets
                for name in ast.walk(target)
                if isinstance(name, ast.Name)
            }
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("name", FUNCTIONS)
def test_image_is_the_lambda_python_base(name: str) -> None:
    bases = [i.arguments.split()[0] for i in instructions(dockerfile(name)) if i.keyword == "FROM"]
    assert set(bases) == {LAMBDA_BASE}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_copied_files_exist_and_reach_the_build_context(name: str) -> None:
    sources = copy_sources(dockerfile(name))
    assert "pixsearch" in sources
    assert f"functions/{name}/app.py" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile(name)} copies missing {source}"
        assert not dockerignore_excludes(ROOT, source), f".dockerignore drops {source}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_command_names_a_handler_of_the_copied_app(name: str) -> None:
    (command,) = [i.words() for i in instructions(dockerfile(name)) if i.keyword == "CMD"]
    module, _, attribute = command[0].partition(".")
    assert module == "app"
    assert attribute in module_names(ROOT / "functions" / name / "app.py")


def _constraint(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        package, _, version = line.partition("==")
        if package.strip().lower() == name:
            return version.strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def _stages(name: str) -> list[list[Instruction]]:
    """The build stages of a Dockerfile, each a list of its instructions (FROM first)."""
    stages: list[list[Instruction]] = []
    for instruction in instructions(dockerfile(name)):
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def _installed_groups(stage: list[Instruction]) -> list[str]:
    """The extras of every ``pip install .../pixsearch[...]`` in a stage, with ARG defaults."""
    defaults = {
        name: value
        for name, _, value in (i.arguments.partition("=") for i in stage if i.keyword == "ARG")
    }
    groups = []
    for instruction in stage:
        if instruction.keyword == "RUN" and "pip install" in instruction.arguments:
            for extras in re.findall(r"/tmp/pixsearch\[([^\]]+)\]", instruction.arguments):
                groups.append(re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], extras))
    return groups


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_stage_installs_only_its_group_with_the_constraints(name: str) -> None:
    final = _stages(name)[-1]
    assert _installed_groups(final) == [name]
    text = " ".join(i.arguments for i in final)
    assert "-c /tmp/pixsearch/constraints.txt" in text
    assert "torch" not in text.replace("PIXSEARCH_", "")


def test_groups_are_declared_and_the_constraints_pin_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(FUNCTIONS) | {"export", "local", "webapp", "dev"} <= set(
        project["optional-dependencies"]
    )
    assert not any("torch" in requirement for requirement in project["dependencies"])
    assert _constraint("torch") == "2.14.1" and _constraint("torchvision") == "0.29.1"


@pytest.mark.parametrize("name", ["embed", "search"])
def test_model_images_export_in_a_build_stage_with_the_cpu_torch(name: str) -> None:
    export, final = _stages(name)
    assert export[0].arguments.endswith(" AS export")
    assert _installed_groups(export) == ["export"]
    args = build_args(dockerfile(name))
    assert args["TORCH_VERSION"] == _constraint("torch")
    assert args["TORCHVISION_VERSION"] == _constraint("torchvision")
    assert "https://download.pytorch.org/whl/cpu" in " ".join(i.arguments for i in export)
    (command,) = [
        match[1]
        for i in export
        if i.keyword == "RUN"
        and (match := re.search(r"\) (pixsearch model export[^;]*);", i.arguments))
    ]
    argv = shlex.split(command.replace("${ONNX_DIR}", build_args(dockerfile(name))["ONNX_DIR"]))
    parsed = build_parser().parse_args(argv[1:])
    assert (parsed.model_command, parsed.to) == ("export", "/opt/models")
    assert any(i.keyword == "COPY" and "--from=export" in i.arguments for i in final)
    final_env = " ".join(i.arguments for i in final if i.keyword == "ENV")
    assert "PIXSEARCH_INFERENCE=onnx" in final_env and "PIXSEARCH_ONNX_DIR=" in final_env


@pytest.mark.parametrize("name", ["embed", "search"])
def test_model_images_bake_the_default_model(name: str) -> None:
    defaults = Settings()
    args = build_args(dockerfile(name))
    assert args["MODEL"] == defaults.model
    assert args["PRETRAINED"] == defaults.pretrained
    metadata = resource(f"{name.capitalize()}Function")["Metadata"]
    assert metadata["DockerBuildArgs"] == {"MODEL": args["MODEL"], "PRETRAINED": args["PRETRAINED"]}


def test_dockerignore_keeps_the_virtualenv_out() -> None:
    assert dockerignore_excludes(ROOT, ".venv")
    assert dockerignore_excludes(ROOT, "pixsearch/__pycache__")
    assert not dockerignore_excludes(ROOT, "pixsearch/inference/model_configs")
    assert not dockerignore_excludes(ROOT, "constraints.txt")
