"""Tiered compaction plans: similar sizes only, sealed segments alone, within the limits."""

from __future__ import annotations

from pixsearch.index.compaction import Limits, plan
from pixsearch.index.manifest import SegmentEntry

LIMITS = Limits(fanout=4, memory_mb=400)  # merges read at most 100 MiB


def _entry(name: str, count: int, *, dead: int = 0, per_row: int = 2048) -> SegmentEntry:
    return SegmentEntry(name, count, "flat", "Flat", "", "", "", bytes=count * per_row, dead=dead)


def test_nothing_merges_until_a_tier_is_full():
    entries = [_entry("big", 40_000), _entry("a", 1000), _entry("b", 1000), _entry("c", 1000)]
    assert plan(entries, LIMITS) is None
    group = plan([*entries, _entry("d", 900)], LIMITS)
    assert {e.id for e in group} == {"a", "b", "c", "d"}  # never the big one


def test_sealed_segments_are_left_alone_unless_mostly_tombstoned():
    sealed = [_entry(f"s{i}", 20_000) for i in range(4)]  # 40 MiB each: 4 exceed a merge
    assert plan(sealed, LIMITS) is None
    purged = [*sealed[:3], _entry("s3", 20_000, dead=15_000)]
    assert [e.id for e in plan(purged, LIMITS)] == ["s3"]


def test_a_segment_with_no_live_rows_is_dropped_first():
    entries = [_entry("a", 1000), _entry("empty", 10, dead=10)]
    assert [e.id for e in plan(entries, LIMITS)] == ["empty"]


def test_a_merge_never_reads_more_than_the_memory_limit_allows():
    entries = [_entry(f"m{i}", 10_000) for i in range(8)]  # 20 MiB each, one tier
    group = plan(entries, LIMITS)
    assert sum(e.bytes for e in group) <= LIMITS.merge_bytes_max
    assert 2 <= len(group) < 8
