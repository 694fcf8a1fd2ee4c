"""FastAPI publishes the contract: routes, request bodies and error shapes in /openapi.json."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pixsearch.config import Settings
from pixsearch.search.fastapi_app import create_fastapi_app
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore


def test_openapi_documents_every_route(settings: Settings, store: ObjectStore) -> None:
    client = TestClient(create_fastapi_app(SearchService(settings, store)))
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {"/search", "/search/image", "/health"}
    body = paths["/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"query_text", "image_key", "image_url", "k", "min_score"} <= set(body["properties"])
    upload = paths["/search/image"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["image"]
    for route in ("/search", "/search/image"):
        responses = paths[route]["post"]["responses"]
        assert {"200", "400", "413", "422", "503"} <= set(responses)
    assert "SearchResponse" in schema["components"]["schemas"]
    assert "ErrorResponse" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200
