"""Metadata end to end on each engine: URL lists with captions -> download -> embed ->
index -> search results that carry list, domain, size and caption, filtered and hybrid."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from pixsearch.config import Settings, get_settings
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.search.flask_app import create_flask_app
from pixsearch.search.requests import build_request
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.engines import ENGINES
from tests.fixtures.images import ImageServer


@pytest.fixture(params=ENGINES)
def service(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    image_server: ImageServer,
    tiny_model: ClipModel,
    store: ObjectStore,
    pipeline: Dispatcher,
) -> SearchService:
    """Two lists indexed by the pipeline into the engine under test; ``cats.csv`` has captions."""
    monkeypatch.setenv("PIXSEARCH_VECTOR_STORE", request.param)
    get_settings.cache_clear()
    cats = image_server.add_images(4, prefix="cats")
    image_server.add_image("big/0.png", color=(9, 99, 199), size=(300, 200), fmt="PNG")
    captions = ["a zebra on the beach", "", "two kittens asleep", "a cat, a hat"]
    csv = "url,caption\n" + "".join(
        f'{url},"{caption}"\n' for url, caption in zip(cats, captions, strict=True)
    )
    store.put("urls/cats.csv", csv.encode())
    dogs = [image_server.add_image(f"dogs/{i}.jpg", color=(40 * i, 200, 90)) for i in range(3)]
    store.put("urls/dogs.txt", "\n".join([*dogs, image_server.url("big/0.png")]).encode())
    pipeline.drain(timeout_s=120)
    return SearchService(get_settings().model_copy(update={"search_refresh_s": 0.0}), store)


def test_results_carry_their_origin(service: SearchService, settings: Settings):
    response = service.search(build_request(settings, k=10, min_score=None, text="a photo"))
    assert response.engine == service.settings.vector_store
    results = response.results
    assert len(results) == 8
    assert {result.list_name for result in results} == {"cats.csv", "dogs.txt"}
    assert {result.source_domain for result in results} == {"127.0.0.1"}
    assert all(result.fetched_at and result.bytes and result.width for result in results)
    captions = {result.caption for result in results if result.list_name == "cats.csv"}
    assert captions == {"a zebra on the beach", None, "two kittens asleep", "a cat, a hat"}
    assert {result.caption for result in results if result.list_name == "dogs.txt"} == {None}


def test_filters_return_every_match_and_only_matches(service: SearchService, settings: Settings):
    def search(**where: object) -> list:
        request = build_request(settings, k=10, min_score=None, text="a photo", where=where)
        return service.search(request).results

    assert {result.list_name for result in search(list="dogs.txt")} == {"dogs.txt"}
    assert len(search(list="dogs.txt")) == 4
    big = search(min_width=300, min_height=200)
    assert [(result.width, result.height) for result in big] == [(300, 200)]
    assert search(fetched_before="2000-01-01T00:00:00Z") == []
    assert len(search(fetched_after="2000-01-01T00:00:00Z", source_domain="127.0.0.1")) == 8


def test_hybrid_puts_the_caption_match_first(service: SearchService, settings: Settings):
    request = build_request(settings, k=3, min_score=None, text="zebra", mode="hybrid")
    results = service.search(request).results
    assert results[0].caption == "a zebra on the beach"
    clip = build_request(settings, k=8, min_score=None, text="zebra")
    scores = {result.key: result.score for result in service.search(clip).results}
    assert all(result.score == pytest.approx(scores[result.key], abs=1e-3) for result in results)


def test_http_filters_and_their_errors(service: SearchService):
    client: FlaskClient = create_flask_app(service).test_client()
    ok = client.post("/search", json={"query_text": "x", "k": 3, "filter": {"list": "cats.csv"}})
    assert ok.status_code == 200, ok.json
    assert {result["list_name"] for result in ok.json["results"]} == {"cats.csv"}
    for body, code in [
        ({"query_text": "x", "filter": {"colour": "red"}}, "unknown_filter"),
        ({"query_text": "x", "filter": {"min_width": "wide"}}, "invalid_filter"),
        ({"query_text": "x", "filter": {"fetched_after": "yesterday"}}, "invalid_filter"),
        ({"query_text": "x", "filter": ["cats"]}, "invalid_filter"),
        ({"query_text": "x", "mode": "fuzzy"}, "invalid_mode"),
        ({"image_key": "images/aa/b.png", "mode": "hybrid"}, "invalid_mode"),
    ]:
        answer = client.post("/search", json=body)
        assert (answer.status_code, answer.json["error"]["code"]) == (400, code), body
