"""The LanceDB engine's vector index follows the table's growth (on moto server)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from pixsearch import layout, shards
from pixsearch.cli import main
from pixsearch.config import Settings, get_settings
from pixsearch.shards import Shard
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.filters import parse_filter
from pixsearch.vectorstore.lance_indexes import (
    index_cache_warning,
    index_deltas,
    trained_rows,
    training_estimate_s,
)
from pixsearch.vectorstore.lance_store import LanceStore
from pixsearch.vectorstore.lance_tables import ROWS
from tests.fixtures.model import unit_vectors
from tests.fixtures.vectors import DIM, TAG, engine_settings, make_shard


def ivf_partitions(lance: LanceStore) -> int:
    """The partition count of the table's IVF, as LanceDB's query plan reports it."""
    table = lance.tables.open(ROWS)
    query = table.search(np.ones(DIM, np.float32), vector_column_name="vector")
    plan = query.distance_type("cosine").nprobes(1).limit(1).analyze_plan()
    return int(re.search(r"partitions_ranked=(\d+)", plan).group(1))


def unindexed_rows(lance: LanceStore) -> int:
    return lance.tables.open(ROWS).index_stats("vector_idx").num_unindexed_rows


def finds_itself(lance: LanceStore, shard: Shard, row: int) -> bool:
    found = lance.search(shard.vectors[row], 1).hits
    return [hit.key for hit in found] == [shard.rows[row].key] and found[0].score > 0.99


def part(store: ObjectStore, shard: Shard, start: int, stop: int) -> Shard:
    """Rows ``start:stop`` of ``shard`` as a shard of their own."""
    written = shards.write(store, TAG, shard.rows[start:stop], shard.vectors[start:stop])
    return shards.read(store, TAG, written)


def test_the_ivf_keeps_its_partitions_and_is_retrained_once_the_table_has_grown(
    settings: Settings, store: ObjectStore
):
    tuned = engine_settings(settings, "lancedb", lance_index_min_rows=256, lance_retrain_growth=4.0)
    lance = LanceStore(tuned, store, TAG)
    lance.add([make_shard(store, 0, 300)])
    assert ivf_partitions(lance) == 17  # 300 rows in partitions of √300 = 17 rows
    assert trained_rows(lance.tables.open(ROWS), tuned) == 300

    folded = make_shard(store, 300, 600)
    lance.add([folded])  # 900 rows: under 4 × 300, folded in
    assert ivf_partitions(lance) > 17  # optimize split the partitions that outgrew 17 rows
    assert unindexed_rows(lance) == 0
    assert finds_itself(lance, folded, 0) and finds_itself(lance, folded, 599)
    assert trained_rows(lance.tables.open(ROWS), tuned) == 300

    grown = make_shard(store, 900, 300)
    lance.add([grown])  # 1,200 rows: 4 × the 300 it was trained on
    assert trained_rows(lance.tables.open(ROWS), tuned) == 1200
    # 1,200 rows in partitions of about √1200 = 34 rows (k-means may leave a few empty)
    assert 17 < ivf_partitions(lance) <= -(-1200 // 34)
    assert unindexed_rows(lance) == 0
    assert finds_itself(lance, grown, 7) and finds_itself(lance, folded, 300)


def test_new_rows_are_folded_in_as_deltas_until_their_bound_retrains_the_ivf(
    settings: Settings, store: ObjectStore
):
    tuned = engine_settings(
        settings,
        "lancedb",
        lance_index_min_rows=256,
        lance_optimize_rows=1,
        lance_retrain_growth=10.0,
        lance_max_index_deltas=3,
    )
    lance = LanceStore(tuned, store, TAG)
    whole = make_shard(store, 0, 1160)  # the batches come from the data it was trained on
    lance.add([part(store, whole, 0, 1000)])
    seen = []  # (deltas, rows trained on) after each 20-row add
    for start in range(1000, 1160, 20):
        batch = part(store, whole, start, start + 20)
        lance.add([batch])
        table = lance.tables.open(ROWS)
        seen.append((index_deltas(table), trained_rows(table, tuned)))
        assert unindexed_rows(lance) == 0 and finds_itself(lance, batch, 19)
    assert max(deltas for deltas, _ in seen) == 3  # folded in as deltas, up to the bound
    reached = [deltas for deltas, _ in seen].index(3)
    # The add after the bound was reached trained the IVF anew on every row then there.
    assert seen[reached + 1] == (0, 1000 + 20 * (reached + 2))
    assert seen[reached][1] == 1000
    assert finds_itself(lance, whole, 0)


@pytest.mark.filterwarnings("ignore:optimize\\(cleanup_older_than=0\\)")
def test_old_versions_are_removed_and_a_search_serving_one_moves_to_the_newest(
    settings: Settings, store: ObjectStore
):
    tuned = engine_settings(
        settings, "lancedb", lance_index_min_rows=256, lance_optimize_rows=1, index_grace_s=0
    )
    writer = LanceStore(tuned, store, TAG)
    first = make_shard(store, 0, 300, captions=False)
    writer.add([first])
    reader = LanceStore(tuned.model_copy(update={"search_refresh_s": 3600}), store, TAG)
    served = reader.search(first.vectors[0], 1).version
    table = f"{layout.lance_prefix(TAG)}/{ROWS}.lance"
    data_files = {info.key for info in store.list(f"{table}/data/")}

    gone = [row.key for row in first.rows[:100]]
    for key in gone:
        store.delete(key)
    writer.remove(gone)  # a third of the rows deleted: the next compaction rewrites them
    later = make_shard(store, 300, 300, captions=False)
    writer.add([later])  # merge, then optimize: compaction, cleanup, index update
    # what is left: the compacted version and the index update committed after the cleanup
    assert store.count(f"{table}/_versions/") == 2
    assert not data_files & {info.key for info in store.list(f"{table}/data/")}

    found = reader.search(later.vectors[5], 1)
    assert found.version > served
    assert [hit.key for hit in found.hits] == [later.rows[5].key]


@pytest.mark.parametrize("refine", [1, 10])
def test_scores_are_cosine_similarities_from_the_index(
    settings: Settings, store: ObjectStore, refine: int
):
    tuned = engine_settings(
        settings, "lancedb", lance_index_min_rows=256, lance_refine_factor=refine
    )
    shard = make_shard(store, 0, 300, captions=False)
    lance = LanceStore(tuned, store, TAG)
    lance.add([shard])
    rows = {row.key: number for number, row in enumerate(shard.rows)}
    query = shard.vectors[3]
    hits = lance.search(query, 5).hits
    assert hits[0].key == shard.rows[3].key
    for hit in hits:
        assert hit.score == pytest.approx(float(shard.vectors[rows[hit.key]] @ query), abs=0.02)


def test_lancedb_caches_stay_within_their_settings(settings: Settings, store: ObjectStore):
    tuned = engine_settings(settings, "lancedb", lance_index_min_rows=256)
    shard = make_shard(store, 0, 600)
    LanceStore(tuned, store, TAG).add([shard])

    def cached_bytes_after_queries(**caps: int) -> int:
        lance = LanceStore(tuned.model_copy(update=caps), store, TAG)
        assert all(finds_itself(lance, shard, row) for row in range(0, 600, 60))
        return lance.tables.session.size_bytes

    assert cached_bytes_after_queries() > 64 * 1024  # the defaults keep what was read
    assert cached_bytes_after_queries(lance_index_cache_mb=0, lance_metadata_cache_mb=0) < 4096


def test_a_search_says_when_the_index_outgrows_its_cache(
    settings: Settings, store: ObjectStore, caplog: pytest.LogCaptureFixture
):
    tuned = engine_settings(settings, "lancedb", lance_index_min_rows=256)
    shard = make_shard(store, 0, 600)
    LanceStore(tuned, store, TAG).add([shard])
    caplog.set_level(logging.WARNING, logger="pixsearch.vectorstore.lance_store")
    for cache_mb in (1, 0):  # 600 rows of index: about 90 KB
        lance = LanceStore(tuned.model_copy(update={"lance_index_cache_mb": cache_mb}), store, TAG)
        assert finds_itself(lance, shard, 0)
    said = [r.getMessage() for r in caplog.records if "INDEX_CACHE_MB" in r.getMessage()]
    assert len(said) == 1 and "600 rows" in said[0] and "0 MB index cache" in said[0]
    assert index_cache_warning(2_000_000, 512, 512) is None
    assert "about 290 MB" in index_cache_warning(2_000_000, 512, 256)


def test_queries_search_a_share_of_the_partitions_and_filters_read_indexes(
    settings: Settings, store: ObjectStore
):
    tuned = engine_settings(settings, "lancedb", lance_index_min_rows=256, lance_nprobes=1)
    shard = make_shard(store, 0, 1200, captions=False)
    writer = LanceStore(tuned, store, TAG)
    writer.add([shard])  # partitions of √1200 = 34 rows
    queries = unit_vectors(40, DIM, seed=99)
    exact = [set(np.argsort(-(shard.vectors @ query))[:10]) for query in queries]
    keys = {row.key: number for number, row in enumerate(shard.rows)}

    def recall(fraction: float) -> float:
        lance = LanceStore(tuned.model_copy(update={"lance_probe_fraction": fraction}), store, TAG)
        found = sum(
            len(truth & {keys[hit.key] for hit in lance.search(query, 10).hits})
            for query, truth in zip(queries, exact, strict=True)
        )
        return found / (10 * len(queries))

    assert recall(1.0) >= 0.95  # every partition searched
    assert recall(0.01) < recall(1.0) - 0.1  # one partition of about 35

    table = writer.tables.open(ROWS)
    indexed = {index.columns[0]: index.index_type for index in table.list_indices()}
    assert indexed["list_name"] == indexed["source_domain"] == "Bitmap"
    assert indexed["width"] == indexed["height"] == indexed["fetched_at_ms"] == "BTree"


def test_a_filter_its_partitions_cannot_fill_searches_them_all(
    settings: Settings, store: ObjectStore
):
    tuned = engine_settings(
        settings, "lancedb", lance_index_min_rows=256, lance_nprobes=1, lance_probe_fraction=0.01
    )
    shard = make_shard(store, 0, 1200, captions=False)
    lance = LanceStore(tuned, store, TAG)
    lance.add([shard])
    wide = {row.key for row in shard.rows if row.width >= 1000}  # 1 row in 10, in every partition
    query = shard.vectors[0]
    hits = lance.search(query, 50, parse_filter({"min_width": 1000})).hits
    assert len(hits) == 50 and {hit.key for hit in hits} <= wide
    common = lance.search(query, 10, parse_filter({"list": "cats"})).hits
    assert len(common) == 10  # one partition of about 35 holds 10 of a fifth of the rows


def test_a_training_over_half_an_index_run_waits_for_the_retrain_command(
    settings: Settings,
    store: ObjectStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
):
    tuned = engine_settings(settings, "lancedb", lance_index_min_rows=256, index_time_s=60.0)
    lance = LanceStore(tuned, store, TAG)
    lance.add([make_shard(store, 0, 300)])
    table = lance.tables.open(ROWS)
    estimate = training_estimate_s(table, 600, tuned)
    assert estimate is not None and estimate > 0  # 2^1.5 times the first training's time

    hurried = tuned.model_copy(update={"index_time_s": estimate})  # half of it is too little
    grown = make_shard(store, 300, 300)
    LanceStore(hurried, store, TAG).add([grown])  # 600 rows: twice the 300 trained on
    table = lance.tables.open(ROWS)
    assert trained_rows(table, tuned) == 300  # not trained: optimize folded its rows in
    assert unindexed_rows(lance) == 0
    assert finds_itself(lance, grown, 299)
    assert "pixsearch index retrain" in caplog.text

    monkeypatch.setenv("PIXSEARCH_VECTOR_STORE", "lancedb")
    get_settings.cache_clear()
    assert main(["index", "retrain", "--model-tag", TAG]) == 0
    assert "on 600 rows in" in capsys.readouterr().out
    table = lance.tables.open(ROWS)
    assert (trained_rows(table, tuned), index_deltas(table)) == (600, 0)
    assert finds_itself(lance, grown, 299)


def test_retrain_names_its_engine_on_faiss(
    settings: Settings, store: ObjectStore, capsys: pytest.CaptureFixture[str]
):
    assert main(["index", "retrain"]) == 2
    assert "PIXSEARCH_VECTOR_STORE=lancedb" in capsys.readouterr().err
