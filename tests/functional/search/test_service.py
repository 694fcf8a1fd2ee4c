"""SearchService over a real index built by the embed and index stages on moto server."""

from __future__ import annotations

import logging
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.index import update
from pixsearch.index.compaction import Limits
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.search.errors import NotFound, SearchError
from pixsearch.search.requests import build_request
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from tests.fixtures.model import StoredImage, store_images
from tests.fixtures.search import reloaded


@pytest.fixture
def indexed(tiny_model: ClipModel, store: ObjectStore, pipeline: Dispatcher) -> list[StoredImage]:
    images = store_images(store, 8)
    pipeline.drain()
    return images


@pytest.fixture
def service(settings: Settings, store: ObjectStore) -> SearchService:
    return SearchService(settings, store)


def scores(response) -> list[float]:
    return [result.score for result in response.results]


def test_text_query_returns_k_results_best_first(
    service: SearchService, settings: Settings, indexed: list[StoredImage]
) -> None:
    response = service.search(build_request(settings, k=5, min_score=None, text="a red circle"))
    assert len(response.results) == 5
    assert scores(response) == sorted(scores(response), reverse=True)
    by_key = {image.key: image for image in indexed}
    for result in response.results:
        image = by_key[result.key]
        assert (result.source_url, result.width, result.height) == (image.source_url, *image.size)
        with urllib.request.urlopen(result.image_url, timeout=10) as reply:
            assert reply.read() == image.data
    assert response.model == settings.model_tag
    assert response.index_version >= 1
    assert response.took_ms > 0


@pytest.mark.parametrize("kind", ["image_key", "image_bytes"])
def test_image_query_finds_itself_first(
    service: SearchService, settings: Settings, indexed: list[StoredImage], kind: str
) -> None:
    for image in indexed[:3]:
        value = image.key if kind == "image_key" else image.data
        response = service.search(build_request(settings, k=3, min_score=None, **{kind: value}))
        assert response.results[0].key == image.key
        assert response.results[0].score == pytest.approx(1.0, abs=1e-4)


def test_k_larger_than_the_index_returns_every_image(
    service: SearchService, settings: Settings, indexed: list[StoredImage]
) -> None:
    response = service.search(build_request(settings, k=50, min_score=None, text="anything"))
    assert sorted(result.key for result in response.results) == sorted(i.key for i in indexed)


def test_min_score_drops_weaker_results(
    service: SearchService, settings: Settings, indexed: list[StoredImage]
) -> None:
    query = {"k": 8, "image_key": indexed[0].key}
    everything = service.search(build_request(settings, min_score=None, **query))
    threshold = everything.results[3].score
    filtered = service.search(build_request(settings, min_score=threshold, **query))
    assert filtered.results == [r for r in everything.results if r.score >= threshold]
    assert 1 <= len(filtered.results) < len(everything.results)


def test_repeated_text_query_is_served_from_the_cache(
    service: SearchService, settings: Settings, indexed: list[StoredImage]
) -> None:
    request = build_request(settings, k=3, min_score=None, text="a blue square")
    first = service.search(request)
    assert service.query_cache.stats()["misses"] == 1
    second = service.search(request)
    assert service.query_cache.stats()["hits"] == 1
    assert second.results == first.results


def test_unknown_image_key_is_404_and_non_image_object_is_422(
    service: SearchService, settings: Settings, store: ObjectStore, indexed: list[StoredImage]
) -> None:
    with pytest.raises(NotFound):
        service.search(build_request(settings, k=1, min_score=None, image_key="images/0/no.png"))
    store.put("images/zz/not-an-image.png", b"plain text")
    with pytest.raises(SearchError) as caught:
        service.search(
            build_request(settings, k=1, min_score=None, image_key="images/zz/not-an-image.png")
        )
    assert (caught.value.status, caught.value.code) == (422, "invalid_image")


def test_health_reports_the_loaded_index(
    service: SearchService, settings: Settings, indexed: list[StoredImage]
) -> None:
    service.warm()
    health = service.health()
    assert (health.status, health.http_status, health.reason) == ("ok", 200, None)
    assert (health.model, health.model_loaded) == (settings.model_tag, True)
    assert health.vector_count == len(indexed)
    assert health.segment_count >= 1
    assert health.index_version >= 1
    assert health.index_age_s is not None and health.index_age_s >= 0


def test_new_index_version_is_seen_after_the_refresh_interval(
    tiny_model: ClipModel,
    store: ObjectStore,
    pipeline: Dispatcher,
    settings: Settings,
    indexed: list[StoredImage],
) -> None:
    fresh = SearchService(settings.model_copy(update={"search_refresh_s": 0.0}), store)
    patient = SearchService(settings.model_copy(update={"search_refresh_s": 3600.0}), store)
    request = build_request(settings, k=20, min_score=None, text="shapes")
    before = fresh.search(request)
    assert patient.search(request).index_version == before.index_version
    added = store_images(store, 3, first=100)
    pipeline.drain()
    assert fresh.search(request).index_version == before.index_version  # reload runs aside
    reloaded(fresh.vectors.cache)
    after = fresh.search(request)
    assert after.index_version > before.index_version
    assert {image.key for image in added} <= {result.key for result in after.results}
    assert len(after.results) == len(indexed) + len(added)
    assert patient.search(request).index_version == before.index_version


def test_requests_in_flight_keep_their_snapshot_across_a_swap(
    store: ObjectStore,
    pipeline: Dispatcher,
    settings: Settings,
    indexed: list[StoredImage],
) -> None:
    service = SearchService(settings.model_copy(update={"search_refresh_s": 0.0}), store)
    old = service.vectors.cache.current()
    store_images(store, 2, first=200)
    pipeline.drain()
    assert service.vectors.cache.current() is old  # the reload runs aside
    new = reloaded(service.vectors.cache)
    assert new.version > old.version
    query = service.embed(build_request(settings, k=1, min_score=None, text="x"))
    assert len(old.search(query.reshape(1, -1), 50)[0]) == len(indexed)
    assert len(new.search(query.reshape(1, -1), 50)[0]) == len(indexed) + 2


def test_a_refused_new_manifest_keeps_the_old_index_serving_degraded(
    store: ObjectStore, settings: Settings, indexed: list[StoredImage]
) -> None:
    service = SearchService(settings.model_copy(update={"search_refresh_s": 0.0}), store)
    service.warm()
    request = build_request(settings, k=3, min_score=None, image_key=indexed[0].key)
    version = service.search(request).index_version
    store.put(layout.manifest_key(settings.model_tag), b'{"format": 1, "truncated')
    response = service.search(request)
    assert response.index_version == version
    assert response.results[0].key == indexed[0].key
    reloaded(service.vectors.cache)
    health = service.health()
    assert (health.status, health.http_status) == ("degraded", 200)
    assert "manifest" in health.reason
    assert health.index_version == version


def test_concurrent_searches_during_refreshes_all_succeed(
    store: ObjectStore,
    pipeline: Dispatcher,
    settings: Settings,
    indexed: list[StoredImage],
) -> None:
    service = SearchService(settings.model_copy(update={"search_refresh_s": 0.0}), store)
    stop = threading.Event()

    def search_until_stopped(number: int) -> int:
        answered = 0
        while not stop.is_set() or answered == 0:
            text = f"query {number} {answered % 3}"
            response = service.search(build_request(settings, k=4, min_score=None, text=text))
            assert len(response.results) == 4
            answered += 1
        return answered

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(search_until_stopped, n) for n in range(4)]
        store_images(store, 2, first=300)
        pipeline.drain()
        stop.set()
        assert all(future.result(timeout=60) > 0 for future in futures)
    assert reloaded(service.vectors.cache).vector_count == len(indexed) + 2


def test_a_deleted_image_disappears_from_results(
    store: ObjectStore,
    pipeline: Dispatcher,
    settings: Settings,
    indexed: list[StoredImage],
) -> None:
    service = SearchService(settings.model_copy(update={"search_refresh_s": 0.0}), store)
    query = build_request(settings, k=50, min_score=None, text="anything")
    assert indexed[4].key in {result.key for result in service.search(query).results}
    store.delete(indexed[4].key)
    pipeline.drain()
    reloaded(service.vectors.cache)
    keys = {result.key for result in service.search(query).results}
    assert keys == {image.key for image in indexed} - {indexed[4].key}


def test_warm_up_logs_cold_start_timings(
    service: SearchService, indexed: list[StoredImage], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pixsearch.search"):
        service.warm()
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("cold start: model") and "loaded on torch in" in m for m in messages)
    assert any(m.startswith("loaded index") and f"{len(indexed)} vectors" in m for m in messages)
    assert any(m.startswith("cold start: warm-up took") for m in messages)
    assert service.health().status == "ok"


def test_missing_model_weights_are_503_with_the_setting_to_change(
    tiny_model: ClipModel, settings: Settings, store: ObjectStore
) -> None:
    broken = SearchService(settings.model_copy(update={"pretrained": "/nowhere/weights.pt"}))
    with pytest.raises(SearchError) as caught:
        broken.search(build_request(settings, k=1, min_score=None, text="a red car"))
    assert (caught.value.status, caught.value.code) == (503, "model_unavailable")
    assert "PIXSEARCH_PRETRAINED" in caught.value.message
    broken.start_warmup().join(timeout=60)
    health = broken.health()
    assert (health.status, health.http_status, health.model_loaded) == ("unavailable", 503, False)


def test_a_removal_before_any_image_is_an_empty_index_not_an_outage(
    tiny_model: ClipModel, service: SearchService, settings: Settings, store: ObjectStore
) -> None:
    update.apply(
        store,
        settings.model_tag,
        [],
        [layout.image_key("0" * 64, "png")],
        limits=Limits.from_settings(settings),
        image_exists=lambda key: store.head(key) is not None,
    )
    response = service.search(build_request(settings, k=5, min_score=None, text="a red circle"))
    assert response.results == []
    assert response.index_version == 1
