"""docker-compose's pipeline without Docker: the worker containers' own commands, aimed at
an external endpoint (a moto server standing in for LocalStack), index an uploaded image.

The LocalStack hook's topology is the one ``topology.ensure`` creates (checked in
tests/functional/deploy), and the command applies ``ensure`` itself on start.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pixsearch import layout, topology
from pixsearch.config import Settings
from pixsearch.index import manifest as manifests
from pixsearch.inference import ClipModel
from pixsearch.runtime.emulator import EmulatorProcess
from pixsearch.storage import ObjectStore
from tests.functional.deploy.sources import COMPOSE, sample_events_generator

pytestmark = pytest.mark.e2e

COMPOSE_ENDPOINT = "http://localhost.localstack.cloud:4566"

# Stands in for LocalStack, an external endpoint: the emulator behind it matters not.
EMULATOR_BACKENDS = ("moto",)


def worker_argv(name: str, endpoint_url: str) -> list[str]:
    """A worker service's entrypoint + command, aimed at ``endpoint_url``."""
    service = yaml.safe_load(COMPOSE.read_text())["services"][name]
    argv = [*service["entrypoint"], *service["command"]]
    assert f"--endpoint-url={COMPOSE_ENDPOINT}" in argv
    return [arg.replace(COMPOSE_ENDPOINT, endpoint_url) for arg in argv]


def test_worker_services_index_an_uploaded_image(
    tiny_model: ClipModel, emulator: EmulatorProcess, settings: Settings, tmp_path: Path
) -> None:
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {spec.name: tmp_path / f"{spec.name}.log" for spec in topology.STAGES}
    for name, log in logs.items():
        program, *arguments = worker_argv(name, emulator.endpoint_url)
        assert program == "pixsearch"
        with log.open("wb") as output:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "pixsearch.cli", *arguments],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
    store = ObjectStore(settings.bucket)
    manifest = layout.manifest_key(settings.model_tag)
    deadline = time.monotonic() + 180

    def everything_logged() -> str:
        return "\n".join(f"--- {name}\n{log.read_text()}" for name, log in logs.items())

    def wait_for(what: str, done: Callable[[], bool]) -> None:
        while not done():
            assert all(p.poll() is None for p in processes.values()), everything_logged()
            assert time.monotonic() < deadline, f"{what} timed out\n{everything_logged()}"
            time.sleep(0.5)

    try:
        wait_for(
            "start", lambda: all("pixsearch is up" in log.read_text() for log in logs.values())
        )
        sample_events_generator().put_image(store)
        wait_for("index", lambda: store.head(manifest) is not None)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)
    current, _etag = manifests.read(store, settings.model_tag)
    assert current.vector_count == 1
