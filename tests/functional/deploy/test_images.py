"""functions/*/Dockerfile: build from files that exist and run handlers that exist."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from pixsearch.config import Settings
from pixsearch.embed.model import ClipModel
from tests.functional.deploy.dockerfiles import (
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
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("name", FUNCTIONS)
def test_image_is_the_lambda_python_base(name: str) -> None:
    (base,) = [i.arguments for i in instructions(dockerfile(name)) if i.keyword == "FROM"]
    assert base == LAMBDA_BASE


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


@pytest.mark.parametrize("name", FUNCTIONS)
def test_torch_is_the_cpu_build_of_the_pinned_version(name: str) -> None:
    pins = {}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]:
        match = re.fullmatch(r"(torch|torchvision)==(\S+)", requirement)
        if match:
            pins[match[1]] = match[2]
    args = build_args(dockerfile(name))
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]
    assert "https://download.pytorch.org/whl/cpu" in dockerfile(name).read_text()


@pytest.mark.parametrize("name", ["embed", "search"])
def test_model_images_bake_the_default_model(name: str) -> None:
    defaults = Settings()
    args = build_args(dockerfile(name))
    assert args["MODEL"] == defaults.model
    assert args["PRETRAINED"] == defaults.pretrained
    metadata = resource(f"{name.capitalize()}Function")["Metadata"]
    assert metadata["DockerBuildArgs"] == {"MODEL": args["MODEL"], "PRETRAINED": args["PRETRAINED"]}
    text = dockerfile(name).read_text()
    assert "from pixsearch.embed.model import load_model" in text
    assert "HF_HUB_OFFLINE=1" in text


@pytest.mark.parametrize("name", ["embed", "search"])
def test_bake_step_runs_the_library_loader(name: str, tiny_model: ClipModel) -> None:
    """The build's ``python -c`` loads the model the image's settings name (here: tiny)."""
    (bake,) = [
        match[1]
        for i in instructions(dockerfile(name))
        if i.keyword == "RUN" and (match := re.search(r'python -c "([^"]+)"', i.arguments))
    ]
    namespace: dict[str, object] = {}
    exec(compile(bake, f"{name}/Dockerfile", "exec"), namespace)
    assert namespace["load_model"](namespace["Settings"]()) is tiny_model


def test_dockerignore_keeps_the_virtualenv_out() -> None:
    assert dockerignore_excludes(ROOT, ".venv")
    assert dockerignore_excludes(ROOT, "pixsearch/__pycache__")
    assert not dockerignore_excludes(ROOT, "pixsearch/embed/model_configs")
