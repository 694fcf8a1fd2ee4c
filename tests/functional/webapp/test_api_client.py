"""The web app's API client against the real search API, a dead port and a server that is no API."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from pixsearch.runtime.emulator import free_port
from pixsearch.webui.api_client import BAD_RESPONSE, UNREACHABLE, ApiError, SearchApi
from tests.fixtures.images import ImageServer
from tests.fixtures.model import StoredImage


def test_results_parse_into_the_api_response_model(api_url: str, indexed_images: list[StoredImage]):
    api = SearchApi(api_url)
    by_text = api.search_text("red", 3)
    assert len(by_text.results) == 3
    wanted = indexed_images[1]
    by_key = api.search_image_key(wanted.key, 2)
    assert by_key.results[0].key == wanted.key
    by_upload = api.search_upload(wanted.data, "q.png", 8)
    assert [r.key for r in by_upload.results][0] == wanted.key
    assert {r.source_url for r in by_upload.results} == {i.source_url for i in indexed_images}


def test_health_without_an_index_is_a_report_not_an_error(api_url: str):
    health = SearchApi(api_url).health()
    assert health.status == "unavailable"
    assert health.vector_count is None
    assert health.reason


def test_search_without_an_index_says_so(api_url: str):
    with pytest.raises(ApiError) as raised:
        SearchApi(api_url).search_text("anything", 5)
    assert raised.value.index_not_ready
    assert raised.value.status == 503


def test_a_rejected_query_carries_the_api_code_and_message(
    api_url: str, indexed_images: list[StoredImage]
):
    with pytest.raises(ApiError) as raised:
        SearchApi(api_url).search_image_key("urls/not-an-image.txt", 5)
    assert (raised.value.status, raised.value.code) == (400, "invalid_image_key")
    assert "images/" in raised.value.message
    assert not raised.value.unreachable


def test_nobody_listening_is_unreachable():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiError) as raised:
        SearchApi(url).health()
    assert raised.value.code == UNREACHABLE
    assert url in raised.value.message and "pixsearch up" in raised.value.message


def test_a_server_that_is_not_the_api_is_a_bad_response(image_server: ImageServer):
    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")

    image_server.add_route("health", broken)
    image_server.add_bytes("search", b'["not", "an", "object"]', "application/json")
    api = SearchApi(image_server.base_url)
    with pytest.raises(ApiError, match="failed with HTTP 502") as raised:
        api.health()
    assert raised.value.code == BAD_RESPONSE
    with pytest.raises(ApiError, match="without a JSON object"):
        api.search_text("x", 1)


def test_a_slow_api_times_out_with_a_clear_message(image_server: ImageServer):
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    image_server.add_route("health", slow)
    with pytest.raises(ApiError, match="did not answer within 0.2 s") as raised:
        SearchApi(image_server.base_url, timeout_s=0.2).health()
    assert raised.value.unreachable
