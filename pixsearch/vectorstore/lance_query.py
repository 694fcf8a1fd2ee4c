"""LanceDB queries of the search path: nearest vectors, and caption matches for hybrid."""

from __future__ import annotations

from typing import Any

import numpy as np

from pixsearch.config import Settings
from pixsearch.vectorstore.port import Hit
from pixsearch.vectorstore.rows import METADATA_FIELDS, RowMeta

RESULT_COLUMNS = ["key", "source_url", "width", "height", *(f.name for f in METADATA_FIELDS)]


def vector_hits(
    table: Any,
    vector: np.ndarray,
    limit: int,
    sql: str | None,
    settings: Settings,
    probes: int | None,
) -> list[Hit]:
    """Nearest ``limit`` rows matching ``sql``, searching ``probes`` IVF partitions (None:
    the table has no vector index, an exact scan).

    A filtered query searches every partition only when those ``probes`` hold fewer
    than ``limit`` matching rows. Left to search "until ``limit`` rows match" (no
    ``maximum_nprobes``), LanceDB 0.40 searched every partition of every index delta
    whatever the filter: 8,380 partitions and 300 MB read, 7 s a query at 1M rows.
    """
    hits = _nearest(table, vector, limit, sql, settings, probes)
    if probes is not None and sql and len(hits) < limit:
        hits = _nearest(table, vector, limit, sql, settings, probes, widen=True)
    return hits


def _nearest(
    table: Any,
    vector: np.ndarray,
    limit: int,
    sql: str | None,
    settings: Settings,
    probes: int | None,
    widen: bool = False,
) -> list[Hit]:
    """One query: an exact scan (``probes`` None), else the IVF searching ``probes``
    partitions (``widen``: then more, until ``limit`` rows match)."""
    query = table.search(np.asarray(vector, np.float32), vector_column_name="vector")
    query = query.distance_type("cosine").limit(limit).select([*RESULT_COLUMNS, "_distance"])
    if probes is not None:  # re-ranked: the distance is cosine's, as an exact scan's
        query = query.refine_factor(settings.lance_refine_factor)
        query = query.minimum_nprobes(probes).maximum_nprobes(0 if widen else probes)
    if sql:
        query = query.where(sql, prefilter=True)
    return [
        Hit(record["key"], 1.0 - record["_distance"], RowMeta.from_columns(record))
        for record in query.to_arrow().to_pylist()
    ]


def caption_hits(
    table: Any, vector: np.ndarray, text: str, limit: int, sql: str | None
) -> list[Hit]:
    """Full-text matches of ``text`` in captions (the table has a caption index), scored
    by CLIP similarity to ``vector``."""
    query = table.search(text, query_type="fts", fts_columns="caption").limit(limit)
    query = query.select([*RESULT_COLUMNS, "vector", "_score"])
    if sql:
        query = query.where(sql, prefilter=True)
    records = query.to_arrow().to_pylist()
    query_vector = np.asarray(vector, np.float32)
    return [
        Hit(
            record["key"],
            float(np.dot(np.asarray(record["vector"], np.float32), query_vector)),
            RowMeta.from_columns(record),
        )
        for record in records
    ]
