"""docker-compose's pipeline without Docker: the pipeline container's own command, aimed at
an external endpoint (a moto server standing in for LocalStack), indexes an uploaded image.

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

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.embed.model import ClipModel
from pixsearch.index import manifest as manifests
from pixsearch.runtime.moto_server import MotoServer
from pixsearch.storage import ObjectStore
from tests.functional.deploy.sources import COMPOSE, sample_events_generator

pytestmark = pytest.mark.e2e

COMPOSE_ENDPOINT = "http://localhost.localstack.cloud:4566"


def pipeline_argv(endpoint_url: str) -> list[str]:
    """The pipeline service's entrypoint + command, aimed at ``endpoint_url``."""
    service = yaml.safe_load(COMPOSE.read_text())["services"]["pipeline"]
    argv = [*service["entrypoint"], *service["command"]]
    assert f"--endpoint-url={COMPOSE_ENDPOINT}" in argv
    return [arg.replace(COMPOSE_ENDPOINT, endpoint_url) for arg in argv]


def test_pipeline_service_indexes_an_uploaded_image(
    tiny_model: ClipModel, moto_server: MotoServer, settings: Settings, tmp_path: Path
) -> None:
    program, *arguments = pipeline_argv(moto_server.endpoint_url)
    assert program == "pixsearch"
    log = tmp_path / "pipeline.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "pixsearch.cli", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    store = ObjectStore(settings.bucket)
    manifest = layout.manifest_key(settings.model_tag)
    deadline = time.monotonic() + 120

    def wait_for(what: str, done: Callable[[], bool]) -> None:
        while not done():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{what} timed out\n{log.read_text()}"
            time.sleep(0.5)

    try:
        wait_for("start", lambda: "pixsearch is up" in log.read_text())
        sample_events_generator().put_image(store)
        wait_for("index", lambda: store.head(manifest) is not None)
    finally:
        process.terminate()
        process.wait(timeout=30)
    current, _etag = manifests.read(store, settings.model_tag)
    assert current.vector_count == 1
