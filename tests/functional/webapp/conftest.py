"""The search API served for real (Flask under werkzeug on a free loopback port) for the web app."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from werkzeug.serving import make_server

from pixsearch.config import get_settings
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.search.flask_app import create_flask_app
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from tests.fixtures.model import StoredImage, store_images

WEBAPP = Path(__file__).resolve().parents[3] / "webapp" / "app.py"


@pytest.fixture
def api_url(
    tiny_model: ClipModel, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A running search API over this test's bucket; also the web app's ``PIXSEARCH_API_URL``."""
    monkeypatch.setenv("PIXSEARCH_SEARCH_REFRESH_S", "0")
    get_settings.cache_clear()
    service = SearchService(get_settings(), store)
    server = make_server("127.0.0.1", 0, create_flask_app(service), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("PIXSEARCH_API_URL", url)
    yield url
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def indexed_images(store: ObjectStore, pipeline: Dispatcher) -> list[StoredImage]:
    """Eight small images stored as the download stage stores them, embedded and indexed."""
    images = store_images(store, 8)
    pipeline.drain()
    return images


@pytest.fixture
def app() -> AppTest:
    """The web app, not yet run."""
    return AppTest.from_file(str(WEBAPP), default_timeout=60)
