"""IndexCache: manifest checks at most every refresh interval, atomic swaps, no index yet."""

from __future__ import annotations

import pytest

from pixsearch.config import Settings
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.search.errors import Unavailable
from pixsearch.search.index_cache import IndexCache
from pixsearch.storage import ObjectStore
from tests.fixtures.model import store_images
from tests.fixtures.search import reloaded


class Clock:
    """A clock the test moves by hand, so the refresh interval is exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_new_versions_are_picked_up_only_once_the_interval_has_passed(
    tiny_model: ClipModel, settings: Settings, store: ObjectStore, pipeline: Dispatcher
) -> None:
    clock = Clock()
    cache = IndexCache(store, settings.model_tag, refresh_s=5.0, clock=clock)
    with pytest.raises(Unavailable) as caught:
        cache.current()
    assert caught.value.code == "index_unavailable"
    assert "no index" in caught.value.message

    store_images(store, 3)
    pipeline.drain()
    first = cache.current()  # no snapshot yet: checked at once, whatever the interval
    assert first.vector_count == 3

    store_images(store, 2, first=10)
    pipeline.drain()
    clock.now += 4.9
    assert cache.current() is first
    clock.now += 0.1
    assert cache.current() is first  # the request is not held up: the reload runs aside
    second = reloaded(cache)
    assert cache.current() is second
    assert second.version > first.version
    assert second.reused_count >= 1  # only the new segments were read
    assert second.vector_count == 5
    assert cache.state.problem is None

    clock.now += 60
    assert cache.current() is second  # unchanged ETag: the loaded snapshot is kept
