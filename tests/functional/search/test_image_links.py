"""Result image URLs: presigned GETs that a plain HTTP client can load from the object store."""

from __future__ import annotations

import urllib.request

from pixsearch.search.image_links import ImageLinks
from pixsearch.storage import ObjectStore


def test_presigned_url_serves_the_object_and_is_reused(store: ObjectStore) -> None:
    store.put("images/ab/abc.png", b"png bytes", content_type="image/png")
    links = ImageLinks(store, expires_s=600)
    url = links.url("images/ab/abc.png")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"png bytes"
    assert links.url("images/ab/abc.png") == url


def test_capacity_bounds_the_cache(store: ObjectStore) -> None:
    links = ImageLinks(store, capacity=2)
    for name in ("1", "2", "3"):
        links.url(f"images/aa/{name}.png")
    assert len(links) == 2
