"""``image_url`` queries: fetched through the download stage's guarded fetcher, then validated."""

from __future__ import annotations

import pytest

from pixsearch.config import Settings
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.search.errors import SearchError
from pixsearch.search.requests import build_request
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from tests.fixtures.images import ImageServer
from tests.fixtures.model import store_images


@pytest.fixture
def service(
    image_server: ImageServer,
    tiny_model: ClipModel,
    settings: Settings,
    store: ObjectStore,
    pipeline: Dispatcher,
) -> SearchService:
    allowed = settings.model_copy(update={"search_image_url_allow": image_server.allow_entry})
    return SearchService(allowed, store)


def query(service: SearchService, url: str):
    return service.search(build_request(service.settings, k=2, min_score=None, image_url=url))


def test_an_indexed_image_fetched_by_url_finds_itself(
    service: SearchService, image_server: ImageServer, store: ObjectStore, pipeline: Dispatcher
) -> None:
    images = store_images(store, 4)
    pipeline.drain()
    url = image_server.add_bytes("query.png", images[1].data, "image/png")
    response = query(service, url)
    assert response.results[0].key == images[1].key
    assert response.results[0].score == pytest.approx(1.0, abs=1e-4)
    assert image_server.hits["/query.png"] == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "reason"),
    [
        ("missing.png", None, 422, "image_fetch_failed", "http_404"),
        ("page.html", b"<html></html>", 422, "image_fetch_failed", "not_image"),
        ("noise.bin", b"\x00" * 300, 422, "invalid_image", "not_image"),
    ],
)
def test_unusable_urls_are_4xx_with_the_fetch_reason(
    service: SearchService,
    image_server: ImageServer,
    path: str,
    body: bytes | None,
    status: int,
    code: str,
    reason: str,
) -> None:
    if body is not None:
        kind = "text/html" if path.endswith(".html") else "application/octet-stream"
        image_server.add_bytes(path, body, kind)
    with pytest.raises(SearchError) as caught:
        query(service, image_server.url(path))
    assert (caught.value.status, caught.value.code) == (status, code)
    assert reason in caught.value.message


def test_oversized_image_url_is_413(
    service: SearchService, image_server: ImageServer, settings: Settings
) -> None:
    small = SearchService(service.settings.model_copy(update={"search_upload_max_bytes": 1000}))
    url = image_server.add_bytes("big.bin", b"\xff" * 5000, "image/jpeg")
    with pytest.raises(SearchError) as caught:
        query(small, url)
    assert (caught.value.status, caught.value.code) == (413, "upload_too_large")


def test_loopback_is_refused_without_the_search_allow_list(
    tiny_model: ClipModel, settings: Settings, store: ObjectStore, image_server: ImageServer
) -> None:
    """The downloader may fetch from the image server (its allow-list names it); an
    image_url query from the public API may not: it has its own list, empty by default."""
    assert image_server.allow_entry in settings.download_allow
    assert settings.search_image_url_allow == ""
    strict = SearchService(settings, store)
    url = image_server.add_bytes("x.png", b"png", "image/png")
    with pytest.raises(SearchError) as caught:
        query(strict, url)
    assert caught.value.code == "image_fetch_failed"
    assert "blocked_address" in caught.value.message
    assert image_server.hits["/x.png"] == 0
