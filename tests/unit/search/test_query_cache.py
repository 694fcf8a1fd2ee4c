from __future__ import annotations

import numpy as np
import pytest

from pixsearch.search.query_cache import QueryCache


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


def test_hit_returns_the_stored_vector_read_only() -> None:
    cache = QueryCache(2)
    original = vector(1)
    cache.put("tag", "a red car", original)
    cached = cache.get("tag", "a red car")
    assert cached is not None
    np.testing.assert_array_equal(cached, original)
    with pytest.raises(ValueError):
        cached[0] = 0.0
    assert cache.stats() == {"size": 1, "capacity": 2, "hits": 1, "misses": 0}


def test_least_recently_used_entry_is_evicted() -> None:
    cache = QueryCache(2)
    cache.put("tag", "a", vector(1))
    cache.put("tag", "b", vector(2))
    assert cache.get("tag", "a") is not None  # "b" is now the least recently used
    cache.put("tag", "c", vector(3))
    assert cache.get("tag", "b") is None
    assert cache.get("tag", "a") is not None
    assert cache.get("tag", "c") is not None
    assert len(cache) == 2


def test_models_do_not_share_entries() -> None:
    cache = QueryCache(4)
    cache.put("model-a", "a red car", vector(1))
    assert cache.get("model-b", "a red car") is None


def test_zero_capacity_disables_caching() -> None:
    cache = QueryCache(0)
    cache.put("tag", "a", vector(1))
    assert cache.get("tag", "a") is None
    assert len(cache) == 0
