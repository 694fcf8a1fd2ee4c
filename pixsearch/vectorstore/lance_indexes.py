"""The indexes of the LanceDB rows table, kept in step with its size.

A B-tree on ``key`` (the writers' merges and deletes), bitmap and B-tree indexes
on the filterable columns (a filter's prefilter then reads an index, not every
row of the column), a full-text index over captions, and an IVF_RQ vector index
(RaBitQ, two bits a dimension: 128 bytes a 512-d row, a quarter of IVF_SQ's 8-bit
codes, so a million rows' index fits the search cache; its ranking is re-ranked by
full vectors, ``lance_refine_factor``) once the table has ``lance_index_min_rows`` rows
(exact scans before). The IVF is trained with a target partition size of √rows
(about √rows partitions) and ``optimize`` folds new rows into it, splitting
partitions that outgrow that size (given a partition count instead, LanceDB's
optimize merges them down to one or two: every query then scans the whole
table). A query searches a share of the partitions (:func:`search_probes`). The
index is trained anew, on all rows, once the table has ``lance_retrain_growth``
times the rows of the last training (which the ``vector`` field's metadata
records), so its centroids, quantization bounds and partition size follow the
data, or once ``optimize`` has added ``lance_max_index_deltas`` deltas to it.

An index run retrains only when the training fits half of its time
(``index_time_s``, the index function's timeout), estimated from the last
training's time as rows^1.5 (every row is assigned to one of about √rows
partitions; measured on 2 cores: 135 s at 920k rows, 328 s at 1.94M). Past that,
new rows keep joining the index as deltas and each run says so, until ``pixsearch
index retrain`` trains it where no time limit applies: a Lambda killed mid-training
would otherwise retry the same training on every run.

Why growth under 2×: between trainings LanceDB's ``optimize`` adds each batch of
new rows as an index delta and leaves the data files alone, which costs about as
much as the batch. Once a partition reaches about twice its target size it is
split, and a split merges every delta into one index; compaction then sees every
fragment covered by that one index and rewrites all of them (LanceDB compacts
fragments under a million rows together), so from then on every add rewrites the
table (10k-row adds cost 1 s per 10k rows already there, 15 s at 160k). Training
again before partitions double keeps adds at the cost of their own rows, and the
deltas bound keeps the per-query work of searching each delta bounded.

Each ``optimize`` (compaction, index update) also removes the versions older
than ``index_grace_s`` and the files only they used: without it every commit's
manifest and every compacted-away data file stays in the bucket forever. A
search instance still serving a removed version moves to the newest one
(:meth:`pixsearch.vectorstore.lance_store.LanceStore.search`).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta
from typing import Any

import numpy as np
from lancedb.index import FTS, Bitmap, BTree, IvfRq

from pixsearch.config import Settings

log = logging.getLogger(__name__)

MAX_PARTITIONS = 4096
# RaBitQ bits a dimension: at 1M rows, re-ranking 5 × k candidates, two bits recalled
# 0.973 at 56 ms a query; one bit needed 10 × k for 0.970, at 134 ms.
RQ_BITS = 2
# Bytes an IVF_RQ row takes beyond its codes (row id, RaBitQ's factors): measured, 304 MB
# for 2M rows of 512-d at two bits (128 bytes of codes a row).
RQ_ROW_OVERHEAD = 24
MIN_PARTITION_ROWS = 16
TRAINED_ROWS = "pixsearch:ivf_trained_rows"
TRAINED_SECONDS = "pixsearch:ivf_trained_s"
# The share of an index run's time a training may take (the rest: the run's own work, and
# an estimate's error).
TRAINING_SHARE = 0.5
# The columns filters test (:meth:`pixsearch.vectorstore.filters.Filter.to_sql`): few
# distinct values get a bitmap, ranges a B-tree.
SCALAR_INDEXES = {
    "key": BTree,
    "list_name": Bitmap,
    "source_domain": Bitmap,
    "width": BTree,
    "height": BTree,
    "fetched_at_ms": BTree,
}


def index_on(table: Any, column: str) -> Any | None:
    """The table's index over ``column``, if it has one."""
    return next((index for index in table.list_indices() if column in index.columns), None)


def has_index(table: Any, column: str) -> bool:
    return index_on(table, column) is not None


def partition_rows(rows: int) -> int:
    """Target partition size of an IVF trained on ``rows`` rows: √rows (so about √rows
    partitions, at most ``MAX_PARTITIONS``)."""
    return max(MIN_PARTITION_ROWS, int(np.sqrt(rows)), -(-rows // MAX_PARTITIONS))


def maintain(table: Any, settings: Settings, rebuilt: bool = False) -> None:
    """Create or update the indexes this table's size calls for (all of them anew
    after a rebuild).

    A failure here (e.g. two runs indexing at once) loses no rows: the next run retries.
    """
    try:
        rows = table.count_rows()
        for column, kind in SCALAR_INDEXES.items():
            if column in table.schema.names and (rebuilt or not has_index(table, column)):
                table.create_index(column, config=kind())
        if rows >= settings.lance_index_min_rows and (
            rebuilt
            or not has_index(table, "vector")
            or (_outgrown(table, rows, settings) and _training_fits_run(table, rows, settings))
        ):
            train_vector_index(table, rows)
        if (rebuilt or not has_index(table, "caption")) and table.count_rows("caption IS NOT NULL"):
            table.create_index("caption", config=FTS())
        elif _unindexed(table) >= settings.lance_optimize_rows:
            table.optimize(cleanup_older_than=timedelta(seconds=settings.index_grace_s))
    except Exception:  # noqa: BLE001 - the rows are committed; indexing waits a run
        log.warning("index maintenance of %s deferred", table.uri, exc_info=True)


def train_vector_index(table: Any, rows: int, bits: int = RQ_BITS) -> float:
    """Train the IVF_RQ index (``bits`` a dimension) on the table's ``rows`` rows,
    replacing any older one; returns the seconds it took."""
    size = partition_rows(rows)
    started = time.perf_counter()
    config = IvfRq(distance_type="cosine", target_partition_size=size, num_bits=bits)
    table.create_index("vector", config=config, replace=True)
    took = time.perf_counter() - started
    trained = {TRAINED_ROWS: str(rows), TRAINED_SECONDS: f"{took:.3f}"}  # a small one: 0.04 s
    table.update_field_metadata({"path": "vector", "metadata": trained})
    log.info(
        "trained IVF_RQ index on %s: %d rows, partitions of about %d rows, in %.1f s",
        table.uri,
        rows,
        size,
        took,
    )
    return took


def search_probes(table: Any, settings: Settings) -> int | None:
    """Partitions a query searches: ``lance_probe_fraction`` of the IVF's partitions
    (estimated from the rows and the partition size it was trained for), at least
    ``lance_nprobes``; None without a vector index (every query an exact scan)."""
    if not has_index(table, "vector"):
        return None
    partitions = table.count_rows() / partition_rows(trained_rows(table, settings))
    return max(settings.lance_nprobes, math.ceil(settings.lance_probe_fraction * partitions))


def index_cache_warning(rows: int, dim: int, cache_mb: int) -> str | None:
    """Why a search process's index cache cannot hold the IVF_RQ index of ``rows`` rows
    of ``dim``; None while it can."""
    index_mb = rows * (dim * RQ_BITS / 8 + RQ_ROW_OVERHEAD) / 2**20
    if index_mb <= cache_mb:
        return None
    return (
        f"the vector index of {rows:,} rows takes about {index_mb:,.0f} MB, more than the "
        f"{cache_mb:,} MB index cache (PIXSEARCH_LANCE_INDEX_CACHE_MB): queries read index "
        "partitions from the object store again (at 2M rows, seconds a query instead of "
        "a tenth of one); raise it where the search function's memory allows"
    )


def trained_rows(table: Any, settings: Settings) -> int:
    """Rows the vector index was last trained on (an index from before this was recorded
    counts as trained at the threshold, where it was first built)."""
    return int(_training_record(table).get(TRAINED_ROWS.encode(), settings.lance_index_min_rows))


def _training_record(table: Any) -> dict[bytes, bytes]:
    """What the last training recorded in the ``vector`` field's metadata."""
    return table.schema.field("vector").metadata or {}


def training_estimate_s(table: Any, rows: int, settings: Settings) -> float | None:
    """Seconds a training on ``rows`` rows would take, from the last one (None if that
    one's time was not recorded)."""
    took = _training_record(table).get(TRAINED_SECONDS.encode())
    if took is None:
        return None
    return float(took) * (rows / trained_rows(table, settings)) ** 1.5


def _training_fits_run(table: Any, rows: int, settings: Settings) -> bool:
    estimate = training_estimate_s(table, rows, settings)
    budget = TRAINING_SHARE * settings.index_time_s
    if estimate is None or estimate <= budget:
        return True
    log.warning(
        "the IVF of %s is due for training on %d rows, which would take about %.0f s, over "
        "the %.0f s an index run may spend on it (half of PIXSEARCH_INDEX_TIME_S); new rows "
        "join it as deltas (each one searched by every query) until `pixsearch index "
        "retrain` trains it where no time limit applies",
        table.uri,
        rows,
        estimate,
        budget,
    )
    return False


def _outgrown(table: Any, rows: int, settings: Settings) -> bool:
    grown = rows >= settings.lance_retrain_growth * trained_rows(table, settings)
    return grown or index_deltas(table) >= settings.lance_max_index_deltas


def index_deltas(table: Any) -> int:
    """Deltas optimize has added to the vector index since it was trained (0 if none)."""
    index = index_on(table, "vector")
    stats = table.index_stats(index.name) if index is not None else None
    return max(0, stats.num_indices - 1) if stats is not None else 0


def _unindexed(table: Any) -> int:
    most = 0
    for index in table.list_indices():
        stats = table.index_stats(index.name)
        if stats is not None:
            most = max(most, stats.num_unindexed_rows)
    return most
