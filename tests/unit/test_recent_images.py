"""The in-process handover of stored images: content addressed, taken once, byte bounded."""

from __future__ import annotations

import pytest

from pixsearch import images, layout, recent_images
from pixsearch.recent_images import STALE_AFTER_S, RecentImages
from pixsearch.storage import ObjectInfo
from tests.fixtures.images import distinct_color, make_image


def _valid(number: int) -> images.ValidImage:
    data = make_image(distinct_color(number), size=(32, 24), fmt="PNG")
    return images.validate(data, max_pixels=10_000)


def _info(key: str, size: int) -> ObjectInfo:
    return ObjectInfo(key=key, etag="e", size=size)


def test_the_byte_bound_holds_and_what_does_not_fit_is_not_kept():
    cache = RecentImages(max_bytes=250)
    kept = [cache.add("b", _info(f"k{n}", 100), b"x" * 100) for n in range(4)]
    assert kept == [True, True, False, False]
    assert cache.nbytes == 200 <= cache.max_bytes
    assert cache.take("b", "k2") is None
    data, info = cache.take("b", "k0")
    assert (data, info.key) == (b"x" * 100, "k0")
    assert cache.take("b", "k0") is None, "an entry is taken once"
    assert cache.add("b", _info("k3", 100), b"y" * 100)
    assert (cache.nbytes, len(cache)) == (200, 2)


def test_entries_no_embed_run_came_for_make_room_once_stale():
    now = [0.0]
    cache = RecentImages(max_bytes=200, clock=lambda: now[0])
    cache.add("b", _info("old", 150), b"o" * 150)
    assert not cache.add("b", _info("new", 100), b"n" * 100)
    now[0] = STALE_AFTER_S + 1
    assert cache.add("b", _info("new", 100), b"n" * 100)
    assert cache.take("b", "old") is None
    assert cache.nbytes == 100


def test_buckets_do_not_share_entries():
    cache = RecentImages(max_bytes=1000)
    cache.add("one", _info("k", 3), b"abc")
    assert cache.take("two", "k") is None
    assert cache.take("one", "k") is not None


def test_remember_keeps_only_content_addressed_keys_and_only_while_enabled():
    image = _valid(1)
    key = layout.image_key(image.sha256, image.ext)
    recent_images.remember("b", key, image, "etag", {"source-url": "http://x/1"})
    with recent_images.enabled(0) as off:
        assert off is None
    with recent_images.enabled(1 << 20) as cache:
        assert cache is not None
        with pytest.raises(ValueError, match="content address"):
            recent_images.remember("b", layout.image_key("0" * 64, "png"), image, "e", {})
        recent_images.remember("b", key, image, "etag", {"source-url": "http://x/1"})
        with recent_images.enabled(1) as inner:
            assert inner is cache, "an enclosing cache stays in use"
        data, info = cache.take("b", key)
    assert data == image.data
    assert (info.etag, info.size, info.content_type) == ("etag", len(data), "image/png")
    assert info.metadata == {"source-url": "http://x/1"}
    assert info.last_modified is not None and info.last_modified.microsecond == 0
