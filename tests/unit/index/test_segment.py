"""Segments in memory: index type by size, search over several with tombstones."""

from __future__ import annotations

import numpy as np
import pytest

from pixsearch.index.manifest import Manifest
from pixsearch.index.reader import IndexSnapshot, _LiveSegment
from pixsearch.index.segment import Rows, build, recall_at_k
from pixsearch.shards import shard_id
from tests.fixtures.model import unit_vectors


def _rows(names: list[str]) -> Rows:
    return Rows(names, [f"http://x/{n}" for n in names], [4] * len(names), [3] * len(names))


def test_small_segments_are_flat_and_exact():
    vectors = unit_vectors(50, 8, 0)
    segment, index_bytes, rows_bytes = build(vectors, _rows([str(i) for i in range(50)]), 100)
    assert (segment.entry.kind, segment.entry.factory, segment.entry.count) == ("flat", "Flat", 50)
    np.testing.assert_array_equal(segment.vectors(), vectors)
    again, same_index, same_rows = build(vectors, _rows([str(i) for i in range(50)]), 100)
    assert (again.entry.id, same_index, same_rows) == (segment.entry.id, index_bytes, rows_bytes)


def test_search_merges_segments_and_skips_tombstones():
    first = build(unit_vectors(20, 8, 1), _rows([f"a{i}" for i in range(20)]), 100)[0]
    second = build(unit_vectors(20, 8, 2), _rows([f"b{i}" for i in range(20)]), 100)[0]
    tombstones = frozenset({"a3", "b7"})
    manifest = Manifest("t", 8, 1, (first.entry, second.entry), tombstones=tombstones)
    parts = [_LiveSegment(first, tombstones), _LiveSegment(second, tombstones)]
    snapshot = IndexSnapshot(manifest, "etag", parts)
    assert (snapshot.vector_count, snapshot.segment_count) == (38, 2)

    queries = np.concatenate([first.vectors()[[3, 4]], second.vectors()[[7]]])
    hits = snapshot.search(queries, k=40)
    assert [len(row) for row in hits] == [38, 38, 38]
    assert hits[1][0].key == "a4" and hits[1][0].score == pytest.approx(1.0, abs=1e-5)
    assert (hits[1][0].source_url, hits[1][0].width, hits[1][0].height) == ("http://x/a4", 4, 3)
    for row in hits:
        assert not tombstones & {hit.key for hit in row}
        scores = [hit.score for hit in row]
        assert scores == sorted(scores, reverse=True)
    everything = np.concatenate([first.vectors(), second.vectors()])
    exact = np.argsort(-(queries @ everything.T), axis=1)[:, :5]
    names = [f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)]
    assert [hit.key for hit in hits[1][:5]] == [names[i] for i in exact[1]]


def test_recall_at_k():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[4, 3, 9, 9], [5, 0, 0, 0]]), exact) == 3 / 8


def test_shard_id_depends_on_the_set_of_row_identities_only():
    pairs = [("images/a.png", "e1"), ("images/b.png", "e2")]
    assert shard_id(pairs) == shard_id(pairs[::-1]) == shard_id(pairs + pairs[:1])
    assert shard_id(pairs) != shard_id([("images/a.png", "e1"), ("images/b.png", "e3")])
    uploaded_again = [("images/a.png", "e1", "2026-01-02T00:00:01"), pairs[1]]
    assert shard_id(pairs) != shard_id(uploaded_again)
