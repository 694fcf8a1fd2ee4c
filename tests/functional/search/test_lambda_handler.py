"""functions/search/app.py's ``handler`` driven with the sample API Gateway events in events/."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pixsearch.config import Settings
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from tests.fixtures.model import store_images
from tests.fixtures.search import EVENTS, decode_lambda_response

APP = Path(__file__).resolve().parents[3] / "functions" / "search" / "app.py"


@pytest.fixture
def lambda_app(tiny_model: ClipModel, settings: Settings, store: ObjectStore) -> ModuleType:
    """The Lambda module freshly imported, as a cold container would, with this test's settings."""
    spec = importlib.util.spec_from_file_location("search_lambda_app", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke(module: ModuleType, event_name: str) -> tuple[int, Any]:
    event = json.loads((EVENTS / f"{event_name}.json").read_text())
    response = decode_lambda_response(module.handler(event, None))
    return response.status, response.body


def test_sample_events_before_and_after_indexing(
    lambda_app: ModuleType, store: ObjectStore, pipeline: Dispatcher
) -> None:
    status, body = invoke(lambda_app, "search_health")
    assert status == 503 and body["status"] == "unavailable"
    status, body = invoke(lambda_app, "search_malformed_json")
    assert status == 400 and body["error"]["code"] == "malformed_json"

    store_images(store, 6)
    pipeline.drain()
    status, body = invoke(lambda_app, "search_text")
    assert status == 200, body
    assert len(body["results"]) == 5
    assert body["index_version"] >= 1
    status, body = invoke(lambda_app, "search_image_upload")
    assert status == 200, body
    assert len(body["results"]) == 3
    lambda_app.app.state.search_service.warm()
    status, body = invoke(lambda_app, "search_health")
    assert status == 200 and body["vector_count"] == 6
