"""The index stage's warning that search cannot hold the index any more."""

from __future__ import annotations

from pixsearch.index.capacity import search_memory_warning
from pixsearch.index.manifest import Manifest, SegmentEntry


def _manifest(*megabytes: int) -> Manifest:
    segments = tuple(
        SegmentEntry(f"{n:032x}", 1000, "ivf", "IVF8,SQ8", "1", "2", "3", bytes=mb * 2**20)
        for n, mb in enumerate(megabytes)
    )
    return Manifest("m__none", 512, 3, segments)


def test_segments_may_fill_half_the_search_function_memory():
    assert search_memory_warning(_manifest(1000, 504), 3008) is None
    warning = search_memory_warning(_manifest(1000, 505), 3008)
    assert warning is not None
    assert "2,000 vectors in 1,505 MB of segments" in warning
    assert "3,008 MB (PIXSEARCH_SEARCH_MEMORY_MB)" in warning and "SearchMemorySize" in warning
    assert search_memory_warning(_manifest(1000, 505), 10240) is None
