"""Immutable index segments: a serialized FAISS index, its row table and its key hashes.

Small segments are exact ``Flat`` indexes. Above ``index_flat_max`` rows a segment is
``IVF{nlist},SQ8`` built from the index's one shared, trained template (see
:mod:`pixsearch.index.quantizer`), so two IVF segments merge by moving inverted lists
(``merge_from``) rather than by reconstructing vectors and training again; each IVF
segment carries the ``nprobe`` calibrated on its own rows. Each segment is three
objects, all checksummed in the manifest: the FAISS index, the row table (key, source
URL, size, in FAISS id order) and the rows' key hashes (8 bytes a row), which is all
the index stage needs to dedup and count tombstones.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pixsearch import layout
from pixsearch.index import calibration
from pixsearch.index.manifest import CorruptIndex, QuantizerEntry, SegmentEntry
from pixsearch.shards import ShardRow
from pixsearch.storage import ConflictError, ObjectNotFound, ObjectStore
from pixsearch.vectorstore.rows import METADATA_COLUMNS, METADATA_FIELDS, RowMeta

ROW_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source_url", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)
TABLE_SCHEMA = pa.schema([*ROW_SCHEMA, *METADATA_FIELDS])
"""Row tables also carry each row's metadata; tables written before that lack it."""


class Rows:
    """Who each FAISS row is, in id order: an Arrow table, so millions of rows stay compact."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    @classmethod
    def of(
        cls,
        keys: list[str],
        source_urls: list[str | None],
        widths: list[int],
        heights: list[int],
    ) -> Rows:
        columns = {"key": keys, "source_url": source_urls, "width": widths, "height": heights}
        return cls(pa.Table.from_pydict(columns, schema=ROW_SCHEMA))

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def keys(self) -> list[str]:
        return self.table.column("key").to_pylist()

    def row(self, position: int) -> tuple[str, str | None, int, int]:
        """(key, source URL, width, height) of one row."""
        return tuple(self.table.column(name)[position].as_py() for name in ROW_SCHEMA.names)

    @classmethod
    def from_shard_rows(cls, rows: Sequence[ShardRow]) -> Rows:
        metas = [RowMeta.from_shard_row(row) for row in rows]
        names = ("key", "source_url", "width", "height", *METADATA_COLUMNS)
        columns = {name: [getattr(meta, name) for meta in metas] for name in names}
        return cls(pa.Table.from_pydict(columns, schema=TABLE_SCHEMA))

    def column(self, name: str) -> list[Any]:
        """One column's values; all None when this table predates the column."""
        if name in self.table.column_names:
            return self.table.column(name).to_pylist()
        return [None] * len(self)

    def meta(self, position: int) -> RowMeta:
        record = {
            name: self.table.column(name)[position].as_py() for name in self.table.column_names
        }
        return RowMeta.from_columns(record)

    def take(self, positions: np.ndarray | list[int]) -> Rows:
        return Rows(self.table.take(pa.array(np.asarray(positions, dtype=np.int64))))

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        if not parts:
            return Rows(ROW_SCHEMA.empty_table())
        tables = [part.table for part in parts]
        return Rows(pa.concat_tables(tables, promote_options="default").combine_chunks())


def key_hashes(keys: Iterable[str]) -> np.ndarray:
    """64-bit digests of image keys, for set operations on millions of keys in numpy.

    Two different keys share a digest with probability ~n^2/2^65 (about 3e-6 at ten
    million keys); such a pair would make the second image look indexed already.
    """
    digests = (hashlib.blake2b(key.encode(), digest_size=8).digest() for key in keys)
    return np.fromiter((int.from_bytes(d, "little") for d in digests), dtype=np.uint64)


@dataclass
class Segment:
    """A segment in memory: its manifest entry, FAISS index, rows and key hashes."""

    entry: SegmentEntry
    index: faiss.Index
    rows: Rows
    hashes: np.ndarray


@dataclass(frozen=True)
class Built:
    """A new segment and its three serialized objects, ready to :func:`save`."""

    segment: Segment
    index_bytes: bytes
    rows_bytes: bytes
    keys_bytes: bytes

    @property
    def entry(self) -> SegmentEntry:
        return self.segment.entry


def build_flat(vectors: np.ndarray, rows: Rows) -> Built:
    """An exact segment over ``vectors`` (unit rows, inner product)."""
    if len(vectors) != len(rows) or len(rows) == 0:
        raise ValueError(f"a segment needs rows: {len(rows)} rows, {len(vectors)} vectors")
    index = faiss.index_factory(vectors.shape[1], "Flat", faiss.METRIC_INNER_PRODUCT)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return _finish(index, rows, "flat", "Flat", None)


def merge(
    parts: list[tuple[Segment, np.ndarray]],
    *,
    flat_max: int,
    template: tuple[QuantizerEntry, faiss.Index] | None,
) -> Built | None:
    """One segment of the rows ``parts`` keep (each: a segment and the positions it keeps).

    Flat while the result fits ``flat_max`` and no part is IVF; otherwise IVF from
    ``template``: flat parts add their vectors, IVF parts hand over their inverted lists
    (dropped rows removed, ids renumbered) without being decoded. None if nothing is kept.
    """
    kept = sum(len(keep) for _, keep in parts)
    if kept == 0:
        return None
    rows = Rows.concat([segment.rows.take(keep) for segment, keep in parts])
    hashes = np.concatenate([segment.hashes[keep] for segment, keep in parts])
    if kept <= flat_max and all(segment.entry.kind == "flat" for segment, _ in parts):
        dim = parts[0][0].index.d
        index = faiss.index_factory(dim, "Flat", faiss.METRIC_INNER_PRODUCT)
        for segment, keep in parts:
            index.add(_flat_vectors(segment.index)[keep])
        return _finish(index, rows, "flat", "Flat", None, hashes)
    if template is None:
        raise ValueError("an IVF segment needs the index's trained template")
    quantizer, empty = template
    index = faiss.clone_index(empty)
    for segment, keep in parts:
        if segment.entry.kind == "flat":
            index.add(_flat_vectors(segment.index)[keep])
        else:
            _move_lists(segment, keep, index)
    return _finish(index, rows, "ivf", quantizer.factory, quantizer, hashes)


def build_ivf(
    vectors: np.ndarray, rows: Rows, template: tuple[QuantizerEntry, faiss.Index]
) -> Built:
    """An IVF segment over ``vectors`` from the index's template (rebuild)."""
    quantizer, empty = template
    index = faiss.clone_index(empty)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return _finish(index, rows, "ivf", quantizer.factory, quantizer)


def flat_vectors(segments: Iterable[tuple[Segment, np.ndarray]]) -> np.ndarray:
    """The kept vectors of flat segments (to train a template on)."""
    found = [
        _flat_vectors(segment.index)[keep]
        for segment, keep in segments
        if segment.entry.kind == "flat"
    ]
    return np.concatenate(found) if found else np.empty((0, 0), dtype=np.float32)


def _flat_vectors(index: faiss.Index) -> np.ndarray:
    return index.reconstruct_n(0, index.ntotal)


def _move_lists(segment: Segment, keep: np.ndarray, into: faiss.Index) -> None:
    """Append ``segment``'s kept rows to ``into`` by moving inverted lists (same template)."""
    source = faiss.extract_index_ivf(segment.index)
    count = segment.entry.count
    if len(keep) < count:
        dead = np.setdiff1d(np.arange(count, dtype=np.int64), keep)
        source.remove_ids(faiss.IDSelectorBatch(dead))
        renumber = np.full(count, -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep), dtype=np.int64)
        lists = source.invlists
        for number in range(source.nlist):
            size = lists.list_size(number)
            if size:
                ids = renumber[faiss.rev_swig_ptr(lists.get_ids(number), size)]
                lists.update_entries(number, 0, size, faiss.swig_ptr(ids), lists.get_codes(number))
    faiss.extract_index_ivf(into).merge_from(source, into.ntotal)


def _finish(
    index: faiss.Index,
    rows: Rows,
    kind: str,
    factory: str,
    quantizer: QuantizerEntry | None,
    hashes: np.ndarray | None = None,
) -> Built:
    index_bytes = faiss.serialize_index(index).tobytes()
    rows_bytes = _rows_to_parquet(rows)
    hashes = key_hashes(rows.keys) if hashes is None else hashes
    keys_bytes = _array_bytes(hashes)
    digest = hashlib.sha256(index_bytes + rows_bytes).hexdigest()[:32]
    entry = SegmentEntry(
        id=digest,
        count=len(rows),
        kind=kind,
        factory=factory,
        index_sha256=hashlib.sha256(index_bytes).hexdigest(),
        rows_sha256=hashlib.sha256(rows_bytes).hexdigest(),
        keys_sha256=hashlib.sha256(keys_bytes).hexdigest(),
        quantizer=quantizer.id if quantizer else "",
        params={"nprobe": calibration.nprobe(index)} if quantizer else {},
        bytes=len(index_bytes),
    )
    return Built(Segment(entry, index, rows, hashes), index_bytes, rows_bytes, keys_bytes)


def save(store: ObjectStore, model_tag: str, built: Built) -> SegmentEntry:
    """Write keys, rows, then index, each only if absent; the entry with the index's ETag.

    Names are content digests, so an existing object is normally this very content;
    one whose bytes do not match its name is damaged and gets replaced.
    """
    entry = built.entry
    for key, data in (
        (layout.segment_keys_key(model_tag, entry.id), built.keys_bytes),
        (layout.segment_rows_key(model_tag, entry.id), built.rows_bytes),
    ):
        put_immutable(store, key, data)
    etag = put_immutable(store, layout.segment_key(model_tag, entry.id), built.index_bytes)
    return replace(entry, index_etag=etag)


def put_immutable(store: ObjectStore, key: str, data: bytes) -> str:
    """Create a content-named object (or repair a damaged one); its ETag."""
    try:
        return store.put_if_absent(key, data, content_type="application/octet-stream")
    except ConflictError:
        existing, info = store.get_with_info(key)
        if hashlib.sha256(existing).digest() != hashlib.sha256(data).digest():
            return store.put(key, data, content_type="application/octet-stream")
        return info.etag


def check_unchanged(store: ObjectStore, model_tag: str, entry: SegmentEntry) -> None:
    """One HEAD: :class:`CorruptIndex` if the index object is gone or was replaced since it
    was saved (the index stage reads only key hashes, so it cannot checksum the rest)."""
    info = store.head(layout.segment_key(model_tag, entry.id))
    if info is None or (entry.index_etag and info.etag != entry.index_etag):
        raise CorruptIndex(f"segment {entry.id}: index object missing or replaced")


def load(store: ObjectStore, model_tag: str, entry: SegmentEntry, dim: int) -> Segment:
    """Read a segment and check it against its manifest entry; :class:`CorruptIndex` if off."""
    index_bytes = get_checked(store, layout.segment_key(model_tag, entry.id), entry.index_sha256)
    rows_bytes = get_checked(store, layout.segment_rows_key(model_tag, entry.id), entry.rows_sha256)
    hashes = load_hashes(store, model_tag, entry)
    try:
        index = faiss.deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
        del index_bytes
        rows = _rows_from_parquet(rows_bytes)
    except (RuntimeError, ValueError, pa.ArrowException) as error:
        raise CorruptIndex(f"segment {entry.id}: unreadable ({error})") from None
    if index.d != dim or index.ntotal != entry.count or len(rows) != entry.count:
        raise CorruptIndex(
            f"segment {entry.id}: dim {index.d}, {index.ntotal} vectors, {len(rows)} rows; "
            f"manifest says dim {dim}, {entry.count} rows"
        )
    return Segment(entry, index, rows, hashes)


def load_rows(store: ObjectStore, model_tag: str, entry: SegmentEntry) -> Rows:
    """A segment's row table alone, checksum verified."""
    data = get_checked(store, layout.segment_rows_key(model_tag, entry.id), entry.rows_sha256)
    try:
        return _rows_from_parquet(data)
    except (ValueError, pa.ArrowException) as error:
        raise CorruptIndex(f"segment {entry.id}: row table unreadable ({error})") from None


def load_hashes(store: ObjectStore, model_tag: str, entry: SegmentEntry) -> np.ndarray:
    """The key hashes of a segment's rows, in row order (one small object)."""
    data = get_checked(store, layout.segment_keys_key(model_tag, entry.id), entry.keys_sha256)
    try:
        hashes = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        raise CorruptIndex(f"segment {entry.id}: key hashes unreadable ({error})") from None
    if hashes.dtype != np.uint64 or hashes.shape != (entry.count,):
        raise CorruptIndex(f"segment {entry.id}: {hashes.shape} key hashes, {entry.count} rows")
    return hashes


def search_parameters(
    entry: SegmentEntry, selector: faiss.IDSelector | None
) -> faiss.SearchParameters:
    if entry.kind == "ivf":
        return faiss.SearchParametersIVF(sel=selector, nprobe=entry.params["nprobe"])
    return faiss.SearchParameters(sel=selector)


def get_checked(store: ObjectStore, key: str, sha256: str) -> bytes:
    """An immutable object's bytes; :class:`CorruptIndex` if missing or not ``sha256``."""
    try:
        data = store.get(key)
    except ObjectNotFound as error:
        raise CorruptIndex(f"{key}: {error}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CorruptIndex(f"{key}: checksum mismatch")
    return data


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _rows_to_parquet(rows: Rows) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(rows.table, buffer)
    return buffer.getvalue()


def _rows_from_parquet(data: bytes) -> Rows:
    # ParquetFile reads one file directly; pq.read_table goes through pyarrow.dataset,
    # whose first import and setup cost a fresh search process ~0.25-0.5 s of cold start.
    table = pq.ParquetFile(pa.BufferReader(data)).read()
    names = table.schema.names
    if names[: len(ROW_SCHEMA)] != ROW_SCHEMA.names or not set(names) <= set(TABLE_SCHEMA.names):
        raise ValueError(f"row table columns {names}, expected {TABLE_SCHEMA.names}")
    return Rows(table.combine_chunks())
