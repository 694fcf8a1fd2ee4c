"""Immutable index segments: a serialized FAISS index plus a row table, both checksummed.

The index type follows the size: exact ``Flat`` up to ``index_flat_max``
vectors, ``IVF{nlist},SQfp16`` above, with ``nprobe`` raised until recall@10
against exact search reaches :data:`RECALL_TARGET` on a sample; the chosen
parameters go into the manifest so every reader searches the same way.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pixsearch import layout
from pixsearch.embed.shard import ShardRow
from pixsearch.index.manifest import CorruptIndex, SegmentEntry
from pixsearch.storage import ConflictError, ObjectNotFound, ObjectStore
from pixsearch.vectorstore.rows import METADATA_COLUMNS, METADATA_FIELDS, RowMeta

RECALL_TARGET = 0.97  # measured on a sample; the promise is >= 0.95
CALIBRATION_QUERIES = 200
ROW_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source_url", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)
TABLE_SCHEMA = pa.schema([*ROW_SCHEMA, *METADATA_FIELDS])


@dataclass(frozen=True)
class Rows:
    """Who each FAISS row is, in row order."""

    keys: list[str]
    source_urls: list[str | None]
    widths: list[int]
    heights: list[int]
    # Metadata columns (METADATA_COLUMNS) where known; tables written before them lack them.
    extra: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def column(self, name: str) -> list[Any]:
        return self.extra.get(name) or [None] * len(self)

    def meta(self, position: int) -> RowMeta:
        return RowMeta(
            key=self.keys[position],
            source_url=self.source_urls[position],
            width=self.widths[position],
            height=self.heights[position],
            **{name: column[position] for name, column in self.extra.items()},
        )

    def take(self, positions: list[int]) -> Rows:
        return Rows(
            [self.keys[i] for i in positions],
            [self.source_urls[i] for i in positions],
            [self.widths[i] for i in positions],
            [self.heights[i] for i in positions],
            {name: [column[i] for i in positions] for name, column in self.extra.items()},
        )

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        names = sorted({name for part in parts for name in part.extra})
        return Rows(
            [key for part in parts for key in part.keys],
            [url for part in parts for url in part.source_urls],
            [width for part in parts for width in part.widths],
            [height for part in parts for height in part.heights],
            {name: [value for part in parts for value in part.column(name)] for name in names},
        )

    @staticmethod
    def from_shard_rows(rows: Sequence[ShardRow]) -> Rows:
        metas = [RowMeta.from_shard_row(row) for row in rows]
        return Rows(
            [meta.key for meta in metas],
            [meta.source_url for meta in metas],
            [row.width for row in rows],
            [row.height for row in rows],
            {name: [getattr(meta, name) for meta in metas] for name in METADATA_COLUMNS},
        )


@dataclass
class Segment:
    """A segment in memory: its manifest entry, FAISS index and rows."""

    entry: SegmentEntry
    index: faiss.Index
    rows: Rows

    def vectors(self) -> np.ndarray:
        """All stored vectors, in row order (for compaction)."""
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.make_direct_map()
        return self.index.reconstruct_n(0, self.index.ntotal)


def build(vectors: np.ndarray, rows: Rows, flat_max: int) -> tuple[Segment, bytes, bytes]:
    """A segment over ``vectors`` (unit rows, inner product), plus its two serialized objects."""
    if len(vectors) != len(rows) or len(rows) == 0:
        raise ValueError(f"a segment needs rows: {len(rows)} rows, {len(vectors)} vectors")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) <= flat_max:
        kind, factory, params = "flat", "Flat", {}
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        index.add(vectors)
    else:
        kind = "ivf"
        # sqrt(n) lists keeps training and adding affordable on a few cores; at least 39
        # training points per list (FAISS's advice). fp16 codes halve the memory at no
        # measurable cost in recall for unit vectors.
        nlist = int(max(1, min(65536, math.sqrt(len(vectors)), len(vectors) // 39)))
        factory = f"IVF{nlist},SQfp16"
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(_training_sample(vectors, nlist))
        index.add(vectors)
        params = {"nprobe": _calibrate_nprobe(index, vectors)}
    index_bytes = faiss.serialize_index(index).tobytes()
    rows_bytes = _rows_to_parquet(rows)
    digest = hashlib.sha256(index_bytes + rows_bytes).hexdigest()[:32]
    entry = SegmentEntry(
        id=digest,
        count=len(rows),
        kind=kind,
        factory=factory,
        index_sha256=hashlib.sha256(index_bytes).hexdigest(),
        rows_sha256=hashlib.sha256(rows_bytes).hexdigest(),
        params=params,
    )
    return Segment(entry, index, rows), index_bytes, rows_bytes


def save(
    store: ObjectStore, model_tag: str, entry: SegmentEntry, index: bytes, rows: bytes
) -> None:
    """Write rows then index, each only if absent.

    Names are content digests, so an existing object is normally this very content;
    one whose bytes do not match its name is damaged and gets replaced.
    """
    for key, data in (
        (layout.segment_rows_key(model_tag, entry.id), rows),
        (layout.segment_key(model_tag, entry.id), index),
    ):
        try:
            store.put_if_absent(key, data, content_type="application/octet-stream")
        except ConflictError:
            if hashlib.sha256(store.get(key)).digest() != hashlib.sha256(data).digest():
                store.put(key, data, content_type="application/octet-stream")


def load(store: ObjectStore, model_tag: str, entry: SegmentEntry, dim: int) -> Segment:
    """Read a segment and check it against its manifest entry; :class:`CorruptIndex` if off."""
    try:
        index_bytes = store.get(layout.segment_key(model_tag, entry.id))
        rows_bytes = store.get(layout.segment_rows_key(model_tag, entry.id))
    except ObjectNotFound as error:
        raise CorruptIndex(f"segment {entry.id}: {error}") from None
    if hashlib.sha256(index_bytes).hexdigest() != entry.index_sha256:
        raise CorruptIndex(f"segment {entry.id}: index checksum mismatch")
    if hashlib.sha256(rows_bytes).hexdigest() != entry.rows_sha256:
        raise CorruptIndex(f"segment {entry.id}: row table checksum mismatch")
    try:
        index = faiss.deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
        rows = _rows_from_parquet(rows_bytes)
    except (RuntimeError, ValueError, pa.ArrowException) as error:
        raise CorruptIndex(f"segment {entry.id}: unreadable ({error})") from None
    if index.d != dim or index.ntotal != entry.count or len(rows) != entry.count:
        raise CorruptIndex(
            f"segment {entry.id}: dim {index.d}, {index.ntotal} vectors, {len(rows)} rows; "
            f"manifest says dim {dim}, {entry.count} rows"
        )
    return Segment(entry, index, rows)


def search_parameters(
    entry: SegmentEntry, selector: faiss.IDSelector | None
) -> faiss.SearchParameters:
    if entry.kind == "ivf":
        return faiss.SearchParametersIVF(sel=selector, nprobe=entry.params["nprobe"])
    return faiss.SearchParameters(sel=selector)


def _training_sample(vectors: np.ndarray, nlist: int) -> np.ndarray:
    size = min(len(vectors), 64 * nlist)
    rng = np.random.default_rng(0)
    return vectors[np.sort(rng.choice(len(vectors), size=size, replace=False))]


def _calibrate_nprobe(index: faiss.Index, vectors: np.ndarray) -> int:
    """The smallest power-of-two nprobe whose recall@10 meets the target for each kind of
    probe query."""
    queries = calibration_queries(vectors, CALIBRATION_QUERIES)
    k = min(10, len(vectors))
    _, exact = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    nprobe = 1
    while True:
        _, found = index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        kinds = zip(np.array_split(found, 2), np.array_split(exact, 2), strict=True)
        if min(recall_at_k(f, e) for f, e in kinds) >= RECALL_TARGET or nprobe >= ivf.nlist:
            return nprobe
        nprobe = min(nprobe * 2, ivf.nlist)


def calibration_queries(vectors: np.ndarray, count: int) -> np.ndarray:
    """Probe queries like the ones search sees: stored vectors moved by noise as large as
    the typical distance between neighbours (image-to-image queries), and midpoints of
    two stored vectors (queries that sit between groups of images)."""
    rng = np.random.default_rng(1)
    half = max(1, count // 2)
    dim = vectors.shape[1]
    picks = rng.choice(len(vectors), size=(3, half))
    noisy = vectors[picks[0]] + rng.normal(scale=0.5 / np.sqrt(dim), size=(half, dim))
    between = vectors[picks[1]] + vectors[picks[2]]
    queries = np.concatenate([noisy, between]).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each exact top-k that the approximate top-k found."""
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact, strict=True))
    return hits / exact.size


def _rows_to_parquet(rows: Rows) -> bytes:
    table = pa.Table.from_pydict(
        {
            "key": rows.keys,
            "source_url": rows.source_urls,
            "width": rows.widths,
            "height": rows.heights,
            **{name: rows.column(name) for name in METADATA_COLUMNS},
        },
        schema=TABLE_SCHEMA,
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _rows_from_parquet(data: bytes) -> Rows:
    table = pq.read_table(io.BytesIO(data))
    names = table.schema.names
    if names[: len(ROW_SCHEMA)] != ROW_SCHEMA.names or not set(names) <= set(TABLE_SCHEMA.names):
        raise ValueError(f"row table columns {names}, expected {TABLE_SCHEMA.names}")
    columns = table.to_pydict()
    extra = {name: columns[name] for name in METADATA_COLUMNS if name in columns}
    return Rows(columns["key"], columns["source_url"], columns["width"], columns["height"], extra)
