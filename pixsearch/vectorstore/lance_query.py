"""LanceDB queries of the search path: nearest vectors, and caption matches for hybrid."""

from __future__ import annotations

from typing import Any

import numpy as np

from pixsearch.config import Settings
from pixsearch.vectorstore.lance_indexes import has_index
from pixsearch.vectorstore.port import Hit
from pixsearch.vectorstore.rows import METADATA_FIELDS, RowMeta

RESULT_COLUMNS = ["key", "source_url", "width", "height", *(f.name for f in METADATA_FIELDS)]


def vector_hits(
    table: Any, vector: np.ndarray, limit: int, sql: str | None, settings: Settings, probes: int
) -> list[Hit]:
    """Nearest ``limit`` rows matching ``sql``, searching ``probes`` IVF partitions (more
    with a filter, until ``limit`` rows match)."""
    query = table.search(np.asarray(vector, np.float32), vector_column_name="vector")
    query = query.distance_type("cosine").limit(limit).select([*RESULT_COLUMNS, "_distance"])
    indexed = has_index(table, "vector")
    # An exact scan and the refine step report cosine distance (1 - cos); the IVF_SQ
    # index alone squared L2 distance, which for unit vectors is 2 - 2 cos.
    scale = 0.5 if indexed and not settings.lance_refine_factor else 1.0
    if indexed:
        if settings.lance_refine_factor:
            query = query.refine_factor(settings.lance_refine_factor)
        query = query.minimum_nprobes(probes).maximum_nprobes(0 if sql else probes)
    if sql:
        query = query.where(sql, prefilter=True)
    return [
        Hit(record["key"], 1.0 - scale * record["_distance"], RowMeta.from_columns(record))
        for record in query.to_arrow().to_pylist()
    ]


def caption_hits(
    table: Any, vector: np.ndarray, text: str, limit: int, sql: str | None
) -> list[Hit]:
    """Full-text matches of ``text`` in captions, scored by CLIP similarity to ``vector``."""
    if not has_index(table, "caption"):
        return []
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
