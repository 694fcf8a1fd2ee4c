"""The embed stage fed from the images the download stage of its process just stored."""

from __future__ import annotations

import numpy as np

from pixsearch import images, layout, recent_images, shards
from pixsearch.config import Settings
from pixsearch.download.sink import BucketSink
from pixsearch.embed.batch import embed_events
from pixsearch.events import ObjectEvent
from pixsearch.inference import ClipModel
from pixsearch.origin import ImageOrigin
from pixsearch.storage import ObjectStore
from tests.fixtures.images import SHAPES, distinct_color, make_image
from tests.fixtures.stores import image_reads


def _download(store: ObjectStore, count: int) -> list[ObjectEvent]:
    """Store ``count`` images as the download stage does; their creation events."""
    sink, keys = BucketSink(store), []
    for number in range(count):
        data = make_image(distinct_color(number), (40, 30), "JPEG", SHAPES[number % len(SHAPES)])
        image = images.validate(data, max_pixels=10_000_000)
        key, status = sink.store(image, ImageOrigin(source_url=f"http://origin/{number}.jpg"))
        assert status == "ok"
        keys.append(key)
    return [
        ObjectEvent(f"m{n}", store.bucket, key, "ObjectCreated:Put") for n, key in enumerate(keys)
    ]


def _embed(events, store, model, settings) -> shards.Shard:
    result = embed_events(events, store, model, settings)
    assert result.failures == {}
    return shards.read(store, model.tag, result.shard_id)


def _forget(store: ObjectStore, model: ClipModel, shard: shards.Shard) -> None:
    for suffix in (layout.SHARD_IDS_SUFFIX, layout.SHARD_SUFFIX):
        store.delete(f"{layout.embeddings_prefix(model.tag)}{shard.shard_id}{suffix}")


def _same_rows(left: shards.Shard, right: shards.Shard) -> None:
    def without_modified(shard: shards.Shard) -> dict[str, tuple]:
        return {
            row.key: (*row.identity[:2], row.source_url, row.width, row.bytes) for row in shard.rows
        }

    assert without_modified(left) == without_modified(right)
    order = np.argsort([row.key for row in left.rows]), np.argsort([row.key for row in right.rows])
    np.testing.assert_allclose(left.vectors[order[0]], right.vectors[order[1]], atol=1e-6)


def test_images_from_memory_embed_as_images_read_from_the_bucket(
    tiny_model: ClipModel, store: ObjectStore, settings: Settings
):
    with recent_images.enabled(64 << 20):
        events = _download(store, 5)
        with image_reads(store) as reads:
            handed_over = _embed(events, store, tiny_model, settings)
    assert reads == []
    _forget(store, tiny_model, handed_over)
    with image_reads(store) as reads:
        read_back = _embed(events, store, tiny_model, settings)
    assert sorted(reads) == sorted(event.key for event in events)
    _same_rows(handed_over, read_back)
    for row in handed_over.rows:
        assert row.modified, "the handed-over image has a Last-Modified like a stored one"


def test_images_the_cache_did_not_keep_or_no_longer_holds_are_read_from_the_bucket(
    tiny_model: ClipModel, store: ObjectStore, settings: Settings
):
    with recent_images.enabled(1) as cache:  # too small for any image
        events = _download(store, 2)
        assert cache is not None and len(cache) == 0
    with recent_images.enabled(64 << 20) as cache:
        events += _download_more(store, cache)
        taken = events[-1].key
        assert cache.take(store.bucket, taken) is not None  # as a first delivery would
        with image_reads(store) as reads:
            shard = _embed(events, store, tiny_model, settings)
    assert sorted(reads) == sorted([events[0].key, events[1].key, taken])
    assert {row.key for row in shard.rows} == {event.key for event in events}


def _download_more(store: ObjectStore, cache: recent_images.RecentImages) -> list[ObjectEvent]:
    sink, events = BucketSink(store), []
    for number in (7, 8):
        data = make_image(distinct_color(number), (40, 30), "JPEG", "cross")
        key, _ = sink.store(images.validate(data, max_pixels=10_000_000), ImageOrigin())
        events.append(ObjectEvent(f"n{number}", store.bucket, key, "ObjectCreated:Put"))
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    return events
