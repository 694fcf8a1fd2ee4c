"""docker-compose.yml: parses, refers only to files that exist, runs commands that exist."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from typing import Any

import pytest
import yaml
from werkzeug.serving import make_server

from pixsearch import topology
from pixsearch.cli import build_parser
from pixsearch.config import Settings
from pixsearch.runtime.emulator import free_port
from pixsearch.search.flask_app import create_flask_app
from tests.functional.deploy.dockerfiles import copy_sources
from tests.functional.deploy.sources import COMPOSE, ROOT

LAST_TAG_WITHOUT_AUTH_TOKEN = (4, 14)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


WORKERS = tuple(spec.name for spec in topology.STAGES)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _argv(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint") or []
    command = service.get("command") or []
    return [*entrypoint, *command]


def test_every_part_of_the_stack_is_there(services: dict[str, Any]) -> None:
    assert set(services) == {"localstack", *WORKERS, "api", "webapp"}


def test_one_worker_per_stage_runs_only_its_stage(services: dict[str, Any]) -> None:
    for name in WORKERS:
        assert f"--stages={name}" in _argv(services[name]), name


def test_localstack_is_pinned_to_a_version_without_auth_token(services: dict[str, Any]) -> None:
    image = services["localstack"]["image"]
    match = re.fullmatch(r"localstack/localstack:(\d+)\.(\d+)(?:\.(\d+))?", image)
    assert match, f"LocalStack must be pinned to a version, not {image!r}"
    assert (int(match[1]), int(match[2])) <= LAST_TAG_WITHOUT_AUTH_TOKEN


def test_builds_use_existing_dockerfiles(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "build" in service:
            context = ROOT / service["build"]["context"]
            assert context.resolve() == ROOT, name
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_bind_mounts_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./"), f"{name}: use a relative bind mount, not {source}"
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_pixsearch_commands_parse(services: dict[str, Any]) -> None:
    """Every ``pixsearch`` invocation (command or healthcheck) is valid for the real CLI."""
    invocations = []
    for service in services.values():
        invocations.append(_argv(service))
        invocations.append(service.get("healthcheck", {}).get("test", [])[1:])
    pixsearch = [argv[1:] for argv in invocations if argv and argv[0] == "pixsearch"]
    assert pixsearch, "no service runs pixsearch"
    for argv in pixsearch:
        build_parser().parse_args(argv)


def test_python_scripts_run_are_in_the_image(services: dict[str, Any]) -> None:
    """``python local.py`` in the Lambda task root: the image copies ``local.py`` there."""
    for name, service in services.items():
        argv = _argv(service)
        if argv[:1] == ["python"] and argv[1].endswith(".py"):
            assert service["working_dir"] == "/var/task", name
            sources = copy_sources(ROOT / service["build"]["dockerfile"])
            assert any(source.endswith(f"/{argv[1]}") for source in sources), name


def test_webapp_runs_the_mounted_streamlit_app(services: dict[str, Any]) -> None:
    webapp = services["webapp"]
    (mount,) = webapp["volumes"]
    source, target, _mode = mount.split(":")
    script = _argv(webapp)[_argv(webapp).index("run") + 1]
    assert script.startswith(f"{target}/")
    assert (ROOT / source / script.removeprefix(f"{target}/")).is_file()
    assert webapp["environment"]["PIXSEARCH_API_URL"] == "http://api:5001"


def test_published_ports_are_the_documented_ones(services: dict[str, Any]) -> None:
    defaults = Settings()
    assert services["api"]["ports"] == [f"127.0.0.1:{defaults.api_port}:{defaults.api_port}"]
    assert services["api"]["environment"]["PIXSEARCH_API_PORT"] == str(defaults.api_port)
    assert services["webapp"]["ports"] == [
        f"127.0.0.1:{defaults.webapp_port}:{defaults.webapp_port}"
    ]
    assert services["localstack"]["ports"] == ["127.0.0.1:4566:4566"]


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, name
            assert condition == {"condition": "service_healthy"}, name


def test_environment_names_real_settings_and_one_bucket(services: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    buckets = set()
    for name, service in services.items():
        environment = service.get("environment", {})
        for variable, value in environment.items():
            if variable.startswith("PIXSEARCH_") and variable != "PIXSEARCH_API_URL":
                assert variable.removeprefix("PIXSEARCH_").lower() in fields, (name, variable)
            if variable == "PIXSEARCH_BUCKET":
                buckets.add(value)
    defaults = Settings()
    assert buckets == {defaults.bucket}
    assert services["localstack"]["environment"]["PIXSEARCH_QUEUE_PREFIX"] == (
        defaults.queue_prefix
    )


def test_containers_reach_localstack_by_a_name_the_browser_resolves_too(
    services: dict[str, Any],
) -> None:
    """Presigned image URLs carry the endpoint host; the host's browser must load them."""
    aliases = services["localstack"]["networks"]["default"]["aliases"]
    for name in (*WORKERS, "api", "webapp"):
        endpoint = services[name]["environment"]["AWS_ENDPOINT_URL"]
        host = re.fullmatch(r"http://([^:/]+):4566", endpoint)
        assert host and host[1] in aliases, name


def test_api_healthcheck_passes_while_there_is_no_index_yet(
    services: dict[str, Any], tiny_model: object, settings: Settings, queues: object
) -> None:
    """/health answers 503 on an empty bucket; the webapp must not wait for an index."""
    check = services["api"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    port = free_port()
    code = check[3].replace(str(settings.api_port), str(port))
    server = make_server("127.0.0.1", port, create_flask_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode != 0
