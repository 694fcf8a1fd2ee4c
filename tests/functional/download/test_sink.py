"""The bucket sink on moto server: first writer wins, metadata is ASCII, failures are rows."""

from __future__ import annotations

import pytest

from pixsearch.download.outcome import DownloadFailure
from pixsearch.download.sink import SOURCE_URL_METADATA, BucketSink
from pixsearch.images import validate
from pixsearch.origin import ImageOrigin
from pixsearch.storage import ObjectStore
from tests.fixtures.images import make_image


def test_first_writer_wins_and_keeps_its_url(store: ObjectStore) -> None:
    image = validate(make_image((4, 5, 6), fmt="PNG"), max_pixels=10**6)
    sink = BucketSink(store)
    origin = ImageOrigin("https://exämple.com/ä b.png", "lists/ä", "2026-01-02T03:04:05Z", "café")
    key, status = sink.store(image, origin)
    assert (key, status) == (f"images/{image.sha256[:2]}/{image.sha256}.png", "ok")
    assert sink.store(image, ImageOrigin("https://other.example/x.png")) == (key, "duplicate")
    head = store.head(key)
    assert head is not None and head.content_type == "image/png"
    assert head.metadata[SOURCE_URL_METADATA] == "https://xn--exmple-cua.com/%C3%A4%20b.png"
    assert ImageOrigin.from_metadata(head.metadata) == ImageOrigin(
        "https://xn--exmple-cua.com/%C3%A4%20b.png", "lists/ä", "2026-01-02T03:04:05Z", "café"
    )
    assert store.get(key) == image.data


def test_store_failure_is_a_storage_row(store: ObjectStore) -> None:
    image = validate(make_image(), max_pixels=10**6)
    sink = BucketSink(ObjectStore(store.bucket + "-missing"))
    with pytest.raises(DownloadFailure) as caught:
        sink.store(image, ImageOrigin("http://example.com/a.jpg"))
    assert caught.value.reason == "storage"
