"""The LanceDB engine's vector index follows the table's growth (on moto server)."""

from __future__ import annotations

import re

import numpy as np

from pixsearch.config import Settings
from pixsearch.shards import Shard
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.lance_indexes import trained_rows
from pixsearch.vectorstore.lance_store import LanceStore
from pixsearch.vectorstore.lance_tables import ROWS
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
