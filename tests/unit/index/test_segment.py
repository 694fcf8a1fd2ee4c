"""Segments in memory: flat and IVF builds, merges that move inverted lists, search."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from pixsearch.index import calibration, quantizer
from pixsearch.index.manifest import Manifest
from pixsearch.index.reader import IndexSnapshot, _LiveSegment
from pixsearch.index.segment import Rows, Segment, build_flat, build_ivf, key_hashes, merge
from pixsearch.shards import shard_id
from tests.fixtures.model import unit_vectors


def _rows(names: list[str]) -> Rows:
    return Rows.of(names, [f"http://x/{n}" for n in names], [4] * len(names), [3] * len(names))


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def test_small_segments_are_flat_exact_and_named_by_content():
    vectors = unit_vectors(50, 8, 0)
    built = build_flat(vectors, _rows(_names("k", 50)))
    assert (built.entry.kind, built.entry.factory, built.entry.count) == ("flat", "Flat", 50)
    np.testing.assert_array_equal(built.segment.index.reconstruct_n(0, 50), vectors)
    again = build_flat(vectors, _rows(_names("k", 50)))
    assert (again.entry.id, again.index_bytes, again.rows_bytes) == (
        built.entry.id,
        built.index_bytes,
        built.rows_bytes,
    )
    np.testing.assert_array_equal(built.segment.hashes, key_hashes(_names("k", 50)))


def test_search_merges_segments_and_skips_tombstones():
    first = build_flat(unit_vectors(20, 8, 1), _rows(_names("a", 20))).segment
    second = build_flat(unit_vectors(20, 8, 2), _rows(_names("b", 20))).segment
    tombstones = {"a3": 0.0, "b7": 0.0}
    manifest = Manifest("t", 8, 1, (first.entry, second.entry), tombstones=tombstones)
    hashes = key_hashes(tombstones)
    snapshot = IndexSnapshot(
        manifest, "etag", [_LiveSegment(first, hashes), _LiveSegment(second, hashes)]
    )
    assert (snapshot.vector_count, snapshot.segment_count) == (38, 2)
    vectors = [s.index.reconstruct_n(0, 20) for s in (first, second)]
    queries = np.concatenate([vectors[0][[3, 4]], vectors[1][[7]]])
    hits = snapshot.search(queries, k=40)
    assert [len(row) for row in hits] == [38, 38, 38]
    assert hits[1][0].key == "a4" and hits[1][0].score == pytest.approx(1.0, abs=1e-5)
    assert (hits[1][0].source_url, hits[1][0].width, hits[1][0].height) == ("http://x/a4", 4, 3)
    for row in hits:
        assert not set(tombstones) & {hit.key for hit in row}
        scores = [hit.score for hit in row]
        assert scores == sorted(scores, reverse=True)
    everything = np.concatenate(vectors)
    exact = np.argsort(-(queries @ everything.T), axis=1)[:, :5]
    names = _names("a", 20) + _names("b", 20)
    assert [hit.key for hit in hits[1][:5]] == [names[i] for i in exact[1]]


def test_ivf_segments_merge_by_moving_lists_and_drop_the_rows_not_kept():
    vectors = unit_vectors(3000, 16, 5, clusters=30)
    template, _ = quantizer.train(vectors, nlist=16)
    assert template[0].factory == "IVF16,SQ8" and template[0].nprobe >= 1
    a = build_ivf(vectors[:1000], _rows(_names("a", 1000)), template).segment
    b = build_ivf(vectors[1000:2000], _rows(_names("b", 1000)), template).segment
    c = build_flat(vectors[2000:2100], _rows(_names("c", 100))).segment
    keep_b = np.arange(10, 1000)  # b0..b9 are tombstoned
    merged = merge(
        [(a, np.arange(1000)), (b, keep_b), (c, np.arange(100))], flat_max=500, template=template
    )
    assert merged is not None and merged.entry.kind == "ivf"
    assert merged.entry.count == merged.segment.index.ntotal == 2090
    assert merged.entry.quantizer == template[0].id
    names = _names("a", 1000) + _names("b", 1000)[10:] + _names("c", 100)
    assert merged.segment.rows.keys == names
    np.testing.assert_array_equal(merged.segment.hashes, key_hashes(names))
    merged.segment.index.nprobe = 16  # every list: positions must match rows exactly
    queries = np.concatenate([vectors[[5, 1500, 2050]]])
    _, found = merged.segment.index.search(queries, 1)
    assert [names[i] for i in found[:, 0]] == ["a5", "b500", "c50"]


def test_a_merge_that_keeps_nothing_is_no_segment():
    only = build_flat(unit_vectors(3, 8, 1), _rows(_names("a", 3))).segment
    assert merge([(only, np.array([], dtype=np.int64))], flat_max=10, template=None) is None


def test_recall_at_k():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert calibration.recall_at_k(exact, exact) == 1.0
    assert calibration.recall_at_k(np.array([[4, 3, 9, 9], [5, 0, 0, 0]]), exact) == 3 / 8


def test_each_ivf_segment_is_calibrated_on_its_own_rows_so_recall_holds_as_it_grows():
    data = unit_vectors(16_200, 32, 7, clusters=400)
    vectors, queries = data[:16_000], data[16_000:]
    template, _ = quantizer.train(vectors[:2000], nlist=48)

    def check(segment: Segment) -> int:
        probes = segment.entry.params["nprobe"]
        assert probes == calibration.nprobe(segment.index)  # deterministic
        assert 1 <= probes < 48  # clustered rows need a fraction of the lists
        count = segment.entry.count
        _, exact = faiss.knn(queries, vectors[:count], 10, metric=faiss.METRIC_INNER_PRODUCT)
        _, found = segment.index.search(
            queries, 10, params=faiss.SearchParametersIVF(nprobe=probes)
        )
        assert calibration.recall_at_k(found, exact) >= 0.95
        return probes

    small = build_ivf(vectors[:2000], _rows(_names("a", 2000)), template).segment
    rest = build_ivf(vectors[2000:], _rows(_names("b", 14_000)), template).segment
    probes = [check(small)]
    grown = merge(
        [(small, np.arange(2000)), (rest, np.arange(14_000))], flat_max=0, template=template
    )
    assert grown is not None
    probes.append(check(grown.segment))
    assert probes[1] >= probes[0], probes  # 8 times the rows: more neighbours in other lists


def test_shard_id_depends_on_the_set_of_row_identities_only():
    pairs = [("images/a.png", "e1"), ("images/b.png", "e2")]
    assert shard_id(pairs) == shard_id(pairs[::-1]) == shard_id(pairs + pairs[:1])
    assert shard_id(pairs) != shard_id([("images/a.png", "e1"), ("images/b.png", "e3")])
    uploaded_again = [("images/a.png", "e1", "2026-01-02T00:00:01"), pairs[1]]
    assert shard_id(pairs) != shard_id(uploaded_again)
