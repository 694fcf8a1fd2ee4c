"""The whole chain on the local runtime, searched over real HTTP through the Flask app.

URL lists go to ``urls/``; images are served on loopback; download -> embed ->
index run as the local runtime dispatches them; queries go to the Flask app on
a real socket, as ``make up`` serves it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from pixsearch.config import Settings
from pixsearch.download.urlmap import read_maps
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.runtime.emulator import free_port
from pixsearch.search.flask_app import create_flask_app
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from tests.fixtures.images import ImageServer

pytestmark = pytest.mark.e2e

REFRESH_S = 0.5


@pytest.fixture
def api_url(
    image_server: ImageServer, tiny_model: ClipModel, settings: Settings, store: ObjectStore
) -> Iterator[str]:
    update = {"search_refresh_s": REFRESH_S, "search_image_url_allow": image_server.allow_entry}
    service = SearchService(settings.model_copy(update=update), store)
    server = make_server("127.0.0.1", free_port(), create_flask_app(service), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def ingest(store: ObjectStore, pipeline: Dispatcher, name: str, urls: list[str]) -> dict[str, str]:
    """Upload a URL list, run the pipeline dry; the image key of each URL."""
    store.put(f"urls/{name}.txt", ("\n".join(urls) + "\n").encode())
    pipeline.drain()
    rows = [row for part in read_maps(store, f"{name}.txt") for row in part.rows]
    assert all(row.status == "ok" for row in rows), rows
    return {row.url: row.key for row in rows}


def search(api_url: str, **query: object) -> dict:
    reply = requests.post(f"{api_url}/search", json=query, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def search_until_newer(api_url: str, version: int, **query: object) -> dict:
    """Search until an index newer than ``version`` answers: it is swapped in off the request
    path, so requests keep the old snapshot until the new one has loaded."""
    deadline = time.monotonic() + 60
    while True:
        reply = search(api_url, **query)
        if reply["index_version"] > version or time.monotonic() > deadline:
            return reply
        time.sleep(REFRESH_S)


def test_ingested_images_are_searchable_and_new_ones_appear_without_restart(
    api_url: str, image_server: ImageServer, store: ObjectStore, pipeline: Dispatcher
) -> None:
    first_urls = image_server.add_images(6, fmt="PNG", prefix="first")
    keys = ingest(store, pipeline, "first", first_urls)

    by_key = search(api_url, image_key=keys[first_urls[2]], k=3)
    best = by_key["results"][0]
    assert (best["key"], best["source_url"]) == (keys[first_urls[2]], first_urls[2])
    assert best["score"] == pytest.approx(1.0, abs=1e-4)
    image = requests.get(best["image_url"], timeout=10)
    assert image.status_code == 200
    assert image.content == requests.get(first_urls[2], timeout=10).content

    by_url = search(api_url, image_url=first_urls[4], k=1)
    assert [r["key"] for r in by_url["results"]] == [keys[first_urls[4]]]

    upload = requests.post(
        f"{api_url}/search/image",
        files={"image": ("q.png", requests.get(first_urls[0], timeout=10).content)},
        data={"k": "2"},
        timeout=30,
    ).json()
    assert upload["results"][0]["key"] == keys[first_urls[0]]

    by_text = search(api_url, query_text="a sunset over the mountains", k=4)
    scores = [result["score"] for result in by_text["results"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    version = by_text["index_version"]

    more_urls = image_server.add_images(9, fmt="PNG", prefix="more")[6:]
    more_keys = ingest(store, pipeline, "more", more_urls)
    after = search_until_newer(api_url, version, query_text="a sunset over the mountains", k=20)
    assert after["index_version"] > version
    assert len(after["results"]) == 9
    assert set(more_keys.values()) <= {result["key"] for result in after["results"]}
    health = requests.get(f"{api_url}/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["vector_count"] == 9
    assert health.json()["index_version"] == after["index_version"]
