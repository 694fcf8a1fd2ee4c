"""The deployment files under test (SAM template, LocalStack hook, compose, sample events)
and the helpers that read and run them."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from cfnlint.decode import decode

from tests.fixtures.tools import missing_tool

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "infra" / "template.yaml"
INIT_SCRIPT = ROOT / "localstack" / "ready.d" / "10-pixsearch-topology.sh"
COMPOSE = ROOT / "docker-compose.yml"
EVENTS = ROOT / "events"

STACK_QUEUE_PREFIX = "${AWS::StackName}-"
"""The queue prefix the template gives its queues and its functions' settings."""


@cache
def template() -> dict[str, Any]:
    """The SAM template as data (``!Ref``/``!Sub``/``!GetAtt`` become ``Ref``/``Fn::*`` maps)."""
    decoded, problems = decode(str(TEMPLATE))
    if problems:
        raise AssertionError(f"{TEMPLATE} does not parse: {problems}")
    return decoded


def resource(logical_id: str) -> dict[str, Any]:
    resources = template()["Resources"]
    assert logical_id in resources, f"{TEMPLATE.name} has no resource {logical_id}"
    return resources[logical_id]


def logical_id(stage_name: str, kind: str) -> str:
    """``("embed", "Queue")`` -> ``EmbedQueue``: the template's naming convention."""
    return f"{stage_name.capitalize()}{kind}"


def arn_prefixes(statement: dict[str, Any], bucket_parameter: str = "BucketName") -> set[str]:
    """The bucket key prefixes an IAM statement's S3 object resources grant (``urls/``...)."""
    resources = statement["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    bucket_arn = f"arn:${{AWS::Partition}}:s3:::${{{bucket_parameter}}}/"
    prefixes = set()
    for item in resources:
        assert isinstance(item, dict) and "Fn::Sub" in item, f"unexpected resource {item!r}"
        text = item["Fn::Sub"]
        assert text.startswith(bucket_arn) and text.endswith("*"), f"not a key prefix: {text}"
        prefixes.add(text.removeprefix(bucket_arn).removesuffix("*"))
    return prefixes


_ARN_REFERENCE = re.compile(r"\$\{QUEUE_ARN\[(\w+)\]\}")
_HEREDOC = re.compile(r"<<JSON\n(.*?)\nJSON\n", re.DOTALL)


@cache
def init_script_text() -> str:
    return INIT_SCRIPT.read_text()


def init_script_stages() -> dict[str, tuple[int, int]]:
    """``create_stage NAME VISIBILITY MAX_RECEIVE`` lines -> ``{name: (visibility, max)}``."""
    stages = {}
    for line in init_script_text().splitlines():
        if line.startswith("create_stage "):
            name, visibility, max_receive = shlex.split(line)[1:]
            stages[name] = (int(visibility), int(max_receive))
    return stages


def init_script_notifications() -> dict[str, Any]:
    """The notification JSON of the script, each queue ARN written as ``queue:<stage>``."""
    documents = _HEREDOC.findall(init_script_text())
    assert len(documents) == 1, "expected one <<JSON document in the init script"
    return json.loads(_ARN_REFERENCE.sub(r"queue:\1", documents[0]))


def tool(name: str) -> str | None:
    """A deployment tool (``sam``, ``aws``) from ``.tools/`` (``make tools``) or the PATH."""
    local = ROOT / ".tools" / "bin" / name
    return str(local) if local.is_file() else shutil.which(name)


def run_init_script(bucket: str, queue_prefix: str, workdir: Path) -> None:
    """Run the LocalStack hook on ``AWS_ENDPOINT_URL`` with the AWS CLI as its ``awslocal``.

    ``awslocal`` in LocalStack is the AWS CLI aimed at LocalStack; here it is aimed at
    whatever endpoint the environment names (a moto server in tests).
    """
    aws = tool("aws")
    if aws is None:
        missing_tool("the AWS CLI is not installed (make tools)")
    shim = workdir / "awslocal"
    shim.write_text(f'#!/bin/sh\nexec "{aws}" --endpoint-url "$AWS_ENDPOINT_URL" "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{workdir}{os.pathsep}{os.environ['PATH']}",
        "PIXSEARCH_BUCKET": bucket,
        "PIXSEARCH_QUEUE_PREFIX": queue_prefix,
    }
    result = subprocess.run(
        ["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def load_module(path: Path, name: str) -> ModuleType:
    """A Python file outside any package (a script, a function's app.py) as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def sample_events_generator() -> ModuleType:
    """``events/generate.py``, whose functions make the objects the sample events name."""
    return load_module(EVENTS / "generate.py", "pixsearch_sample_events")
