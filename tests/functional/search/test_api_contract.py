"""The HTTP contract through every adapter: Flask, FastAPI, Mangum on API Gateway events."""

from __future__ import annotations

import json

import pytest

from pixsearch.config import Settings
from pixsearch.inference import ClipModel
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from tests.fixtures.images import make_image
from tests.fixtures.model import StoredImage
from tests.fixtures.search import ADAPTERS, ApiClient, ApiResponse


@pytest.fixture(params=ADAPTERS)
def api(
    request: pytest.FixtureRequest,
    tiny_model: ClipModel,
    settings: Settings,
    bucket_store: ObjectStore,
) -> ApiClient:
    return ApiClient(request.param, SearchService(settings, bucket_store))


def assert_error(response: ApiResponse, status: int, code: str) -> None:
    assert response.status == status, response.body
    assert response.content_type.startswith("application/json")
    assert set(response.body) == {"error"}
    assert response.body["error"]["code"] == code
    assert isinstance(response.body["error"]["message"], str) and response.body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"query_text": "a sunset', "malformed_json"),
        ("", "malformed_json"),
        ('["a sunset"]', "malformed_json"),
        ("{}", "missing_query"),
        ('{"k": 3}', "missing_query"),
        ('{"query_text": "a", "image_key": "images/ab/x.png"}', "conflicting_query"),
        ('{"query_text": "a", "k": 0}', "invalid_k"),
        ('{"query_text": "a", "k": 101}', "invalid_k"),
        ('{"query_text": "a", "k": "5"}', "invalid_k"),
        ('{"query_text": "a", "k": 1.5}', "invalid_k"),
        ('{"query_text": "a", "min_score": 2}', "invalid_min_score"),
        (json.dumps({"query_text": "x" * 1001}), "text_too_long"),
        ('{"image_url": "ftp://example.org/x.png"}', "invalid_image_url"),
        ('{"text": "a sunset"}', "unknown_field"),
    ],
)
def test_bad_json_is_400(api: ApiClient, body: str, code: str) -> None:
    assert_error(api.post("/search", body), 400, code)


def test_non_utf8_body_is_400(api: ApiClient) -> None:
    assert_error(api.post("/search", b"\xff\xfe\x00{"), 400, "malformed_json")


def test_text_over_cap_is_400_but_at_cap_is_accepted_by_validation(api: ApiClient) -> None:
    at_cap = api.search(query_text="x" * 1000)
    assert at_cap.status == 503  # valid query; the bucket simply has no index yet
    assert_error(at_cap, 503, "index_unavailable")


def test_upload_over_size_cap_is_413(api: ApiClient, settings: Settings) -> None:
    too_big = b"\0" * (settings.search_upload_max_bytes + 1)
    assert_error(api.upload(too_big), 413, "upload_too_large")


def test_upload_far_over_cap_is_413_before_reading(api: ApiClient, settings: Settings):
    huge = b"\0" * (settings.search_upload_max_bytes + 200_000)
    assert_error(api.upload(huge), 413, "upload_too_large")


@pytest.mark.parametrize(
    "data",
    [b"this is not an image", make_image(fmt="PNG")[:60], b"GIF89a" + b"\0" * 10],
    ids=["text", "truncated_png", "bad_gif"],
)
def test_undecodable_upload_is_422(api: ApiClient, data: bytes) -> None:
    assert_error(api.upload(data), 422, "invalid_image")


def test_an_upload_pillow_itself_trips_over_is_422(api: ApiClient) -> None:
    """A TIFF tag of the wrong type makes Pillow raise TypeError (not one of its usual
    decoding errors): still the client's bad image, never a 500."""
    data = bytearray(make_image(size=(16, 12), fmt="TIFF"))
    data[72] = 2  # the type of a tag's value: SHORT -> ASCII
    response = api.upload(bytes(data))
    assert_error(response, 422, "invalid_image")
    assert "TypeError" in response.body["error"]["message"]


def test_upload_without_image_is_400(api: ApiClient) -> None:
    assert_error(api.upload(None, {"k": "3"}), 400, "missing_query")


def test_upload_with_bad_k_is_400(api: ApiClient) -> None:
    assert_error(api.upload(make_image(fmt="PNG"), {"k": "many"}), 400, "invalid_k")


def test_unknown_image_key_is_404(api: ApiClient) -> None:
    assert_error(api.search(image_key="images/00/missing.png"), 404, "image_not_found")


def test_an_image_key_the_store_cannot_serve_is_503(
    tiny_model: ClipModel, settings: Settings, bucket_store: ObjectStore
) -> None:
    """S3 answering something other than NoSuchKey (here NoSuchBucket) is the service's
    trouble, said as a 503 with a code, not a 500."""
    service = SearchService(settings, ObjectStore(f"{settings.bucket}-missing"))
    for adapter in ADAPTERS:
        response = ApiClient(adapter, service).search(image_key="images/00/x.png")
        assert_error(response, 503, "storage_unavailable")
        assert "NoSuchBucket" in response.body["error"]["message"]


def test_image_url_to_a_private_address_is_refused(api: ApiClient) -> None:
    response = api.search(image_url="http://169.254.169.254/latest/meta-data/")
    assert_error(response, 422, "image_fetch_failed")
    assert "169.254.169.254" in response.body["error"]["message"]


def test_unknown_route_and_wrong_method_are_json(api: ApiClient) -> None:
    assert_error(api.get("/nowhere"), 404, "no_such_route")
    assert_error(api.get("/search"), 405, "method_not_allowed")


def test_without_an_index_search_and_health_are_503(api: ApiClient) -> None:
    assert_error(api.search(query_text="a red car"), 503, "index_unavailable")
    health = api.get("/health")
    assert health.status == 503
    assert health.body["status"] == "unavailable"
    assert "no index" in health.body["reason"]
    assert health.body["index_version"] is None


def test_text_search_answers_the_documented_shape(
    api: ApiClient, settings: Settings, indexed: list[StoredImage]
) -> None:
    response = api.search(query_text="a sunset over the mountains", k=4)
    assert response.status == 200, response.body
    assert set(response.body) == {"results", "model", "index_version", "took_ms", "engine"}
    assert response.body["model"] == settings.model_tag
    results = response.body["results"]
    assert len(results) == 4
    assert all(
        set(result)
        == {"key", "score", "source_url", "image_url", "width", "height"}
        | {"list_name", "source_domain", "bytes", "fetched_at", "caption"}
        for result in results
    )
    found = [result["score"] for result in results]
    assert found == sorted(found, reverse=True)


def test_uploaded_image_finds_itself(api: ApiClient, indexed: list[StoredImage]) -> None:
    response = api.upload(indexed[2].data, {"k": "2", "min_score": "-1"})
    assert response.status == 200, response.body
    best = response.body["results"][0]
    assert best["key"] == indexed[2].key
    assert best["score"] == pytest.approx(1.0, abs=1e-4)
    assert len(response.body["results"]) == 2


def test_image_key_search_and_health(api: ApiClient, indexed: list[StoredImage]) -> None:
    response = api.search(image_key=indexed[1].key, k=1)
    assert response.status == 200, response.body
    assert [result["key"] for result in response.body["results"]] == [indexed[1].key]
    api.service.warm()
    health = api.get("/health")
    assert health.status == 200, health.body
    assert health.body["status"] == "ok"
    assert health.body["vector_count"] == len(indexed)
    assert health.body["index_version"] == response.body["index_version"]
