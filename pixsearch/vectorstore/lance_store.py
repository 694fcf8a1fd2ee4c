"""The ``lancedb`` engine: one LanceDB table per model in the bucket, queried where it lies.

``index/{model-tag}/lance/rows.lance`` holds a row per image (vector and
metadata); ``removed.lance`` the keys of removed images, so a shard delivered
after its image's removal adds nothing. Writers use LanceDB's own commits
(concurrent index runs retry their merge on conflict), its own deletes, and its
own indexes: an IVF_SQ vector index (8-bit scalar quantization: recall@10 about
0.98 without re-ranking, where IVF-PQ needed a refine step that costs a random
read per candidate) once the table has ``lance_index_min_rows`` rows (exact
scans before), updated as rows arrive, a B-tree on ``key`` for the merges, and
a full-text index over captions.

Search opens the table and keeps that version until a check (at most every
``search_refresh_s``) finds a newer one that opens; a version that cannot be
read leaves the previous one serving.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, BTree, IvfSq

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.shards import Shard
from pixsearch.storage import ConflictError, ObjectNotFound, ObjectStore
from pixsearch.vectorstore.filters import Filter
from pixsearch.vectorstore.fusion import candidate_pool, fuse
from pixsearch.vectorstore.port import (
    Description,
    DimensionMismatch,
    Found,
    Hit,
    StoreUnavailable,
)
from pixsearch.vectorstore.rows import METADATA_FIELDS, RowMeta

log = logging.getLogger(__name__)

ROWS = "rows"
REMOVED = "removed"
KEYS_PER_STATEMENT = 500
CREATION_WAIT_S = 30.0  # how long a run waits for another to create a table
COMMIT_ATTEMPTS = 5
RESULT_COLUMNS = ["key", "source_url", "width", "height", *(f.name for f in METADATA_FIELDS)]


def storage_options(settings: Settings) -> dict[str, str]:
    """Object store options from the standard AWS variables (endpoint, credentials)."""
    options = {"region": settings.region}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if os.environ.get(variable):
            options[variable.lower()] = os.environ[variable]
    return options


def row_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("source_url", pa.string()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            *METADATA_FIELDS,
        ]
    )


class LanceStore:
    engine = "lancedb"

    def __init__(self, settings: Settings, store: ObjectStore, model_tag: str) -> None:
        self.settings = settings
        self.store = store
        self.model_tag = model_tag
        self.uri = f"s3://{store.bucket}/{layout.lance_prefix(model_tag)}"
        self._db: Any = None
        self._served: Any = None  # the table version search answers from
        self._loaded_at: float | None = None
        self._checked_at: float | None = None
        self._problem: str | None = None
        self._lock = threading.Lock()

    # Writing (the index stage)

    def add(self, shards: Sequence[Shard]) -> None:
        keys, vectors, metas = _unique_rows(shards)
        if keys:
            self._write(lambda: self._add(keys, vectors, metas))

    def remove(self, keys: Sequence[str]) -> None:
        gone = sorted({key for key in keys if self.store.head(key) is None})
        if gone:
            self._write(lambda: self._remove(gone))

    def _write(self, action: Callable[[], None]) -> None:
        try:
            _committing(action)
        except (DimensionMismatch, StoreUnavailable):
            raise
        except Exception as error:
            raise StoreUnavailable(
                f"cannot write LanceDB table {self.uri}/{ROWS}: {error}. If its newest version "
                "is damaged, `pixsearch index rebuild --vector-store lancedb` rebuilds it "
                "from the embedding shards"
            ) from error

    def _add(self, keys: list[str], vectors: np.ndarray, metas: list[RowMeta]) -> None:
        table = self._rows_table(vectors.shape[1])
        removed = self._removed_among(keys)
        revived = [key for key in removed if self.store.head(key) is not None]
        if revived:
            self._removed_table().delete(_key_in(revived))
        gone = removed - set(revived)
        wanted = [i for i, key in enumerate(keys) if key not in gone]
        if not wanted:
            return
        data = _arrow_rows([metas[i] for i in wanted], vectors[wanted], table.schema)
        table.merge_insert("key").when_not_matched_insert_all().execute(data)
        # A removal that committed while this merge ran: its rows go again.
        late = self._removed_among([keys[i] for i in wanted])
        for chunk in _chunks(sorted(late)):
            table.delete(_key_in(chunk))
        self._maintain(table)

    def _remove(self, gone: list[str]) -> None:
        removed = self._removed_table()
        data = pa.table({"key": pa.array(gone, pa.string())})
        removed.merge_insert("key").when_not_matched_insert_all().execute(data)
        table = self._open(ROWS)
        if table is not None:
            for chunk in _chunks(gone):
                table.delete(_key_in(chunk))

    def rebuild(self, shards: Iterable[Shard], gone: set[str]) -> int:
        """Replace the table with the rows of ``shards`` (streamed, one shard at a time)
        and record ``gone`` keys as removed; returns the row count.

        The first batch overwrites the table as one new version (older versions stay
        readable until cleaned up), so a damaged newest version is healed too.
        """
        table = None
        for shard in shards:
            keys, vectors, metas = _unique_rows([shard])
            if table is None:
                schema = row_schema(vectors.shape[1])
                data = _arrow_rows(metas, vectors, schema)
                table = self._connect().create_table(ROWS, data, schema=schema, mode="overwrite")
            else:
                table.add(_arrow_rows(metas, vectors, table.schema))
        removed = pa.table({"key": pa.array(sorted(gone), pa.string())})
        self._connect().create_table(REMOVED, removed, mode="overwrite")
        if table is None:
            return 0
        self._maintain(table, rebuilt=True)
        return table.count_rows()

    # Reading (the search function)

    def search(
        self, vector: np.ndarray, k: int, where: Filter | None = None, text: str | None = None
    ) -> Found:
        table = self._current()
        if vector.shape[-1] != _dim(table.schema):
            raise DimensionMismatch(
                f"index {self.model_tag} has {_dim(table.schema)}-d vectors but the query is "
                f"{vector.shape[-1]}-d; rebuild the index"
            )
        sql = where.to_sql() if where is not None else None
        pool = candidate_pool(k) if text else k
        clip = self._vector_hits(table, vector, pool, sql)
        if not text:
            return Found(clip[:k], table.version)
        captions = self._caption_hits(table, vector, text, pool, sql)
        return Found(fuse(clip, captions, k), table.version)

    def count(self) -> int:
        return self._current().count_rows()

    def describe(self) -> Description:
        if self._refresh_due():
            self.refresh()
        table = self._served
        if table is None:
            return Description(self.engine, checked_at=self._checked_at, problem=self._problem)
        return Description(
            engine=self.engine,
            version=table.version,
            vector_count=table.count_rows(),
            segment_count=table.stats()["fragment_stats"]["num_fragments"],
            loaded_at=self._loaded_at,
            checked_at=self._checked_at,
            problem=self._problem,
            indexed=_has_index(table, "vector"),
        )

    def refresh(self) -> None:
        """Serve the newest version if it opens; otherwise keep the one served and say why."""
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                table = self._open(ROWS)
            except Exception as error:  # noqa: BLE001 - a bad version must not stop search
                self._problem = f"cannot open LanceDB table {self.uri}/{ROWS}: {error}"
                log.warning("%s (serving version %s)", self._problem, self._served_version())
                return
            if table is None:
                self._problem = (
                    f"no index for model {self.model_tag} yet (nothing has been indexed)"
                )
                return
            if self._served is None or table.version != self._served.version:
                self._served, self._loaded_at = table, time.time()
                log.info("serving %s version %d", self.uri, table.version)
            self._problem = None

    def _served_version(self) -> int | None:
        return self._served.version if self._served is not None else None

    def _refresh_due(self) -> bool:
        checked = self._checked_at
        if self._served is None or checked is None:
            return True
        return time.monotonic() - checked >= self.settings.search_refresh_s

    def _current(self) -> Any:
        if self._refresh_due():
            self.refresh()
        if self._served is None:
            raise StoreUnavailable(self._problem or f"no index for model {self.model_tag} yet")
        return self._served

    def _vector_hits(
        self, table: Any, vector: np.ndarray, limit: int, sql: str | None
    ) -> list[Hit]:
        query = table.search(np.asarray(vector, np.float32), vector_column_name="vector")
        query = query.distance_type("cosine").limit(limit).select([*RESULT_COLUMNS, "_distance"])
        indexed = _has_index(table, "vector")
        # An exact scan reports cosine distance (1 - cos); the IVF_SQ index squared L2
        # distance, which for unit vectors is 2 - 2 cos.
        scale = 0.5 if indexed else 1.0
        if indexed:
            if self.settings.lance_refine_factor:
                query = query.refine_factor(self.settings.lance_refine_factor)
            query = query.minimum_nprobes(self.settings.lance_nprobes)
            # With a filter, more partitions are searched until ``limit`` rows match.
            query = query.maximum_nprobes(0 if sql else self.settings.lance_nprobes)
        if sql:
            query = query.where(sql, prefilter=True)
        return [
            Hit(record["key"], 1.0 - scale * record["_distance"], RowMeta.from_columns(record))
            for record in query.to_arrow().to_pylist()
        ]

    def _caption_hits(
        self, table: Any, vector: np.ndarray, text: str, limit: int, sql: str | None
    ) -> list[Hit]:
        if not _has_index(table, "caption"):
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

    # Tables and their indexes

    def _connect(self) -> Any:
        if self._db is None:
            self._db = lancedb.connect(self.uri, storage_options=storage_options(self.settings))
        return self._db

    def _open(self, name: str) -> Any:
        """The table ``name`` at its newest version; None if it was never created."""
        try:
            return self._connect().open_table(name)
        except ValueError as error:
            if "not found" in str(error).lower():
                return None
            raise

    def _create_once(self, name: str, schema: pa.Schema) -> Any:
        """Table ``name``, created by exactly one run when it does not exist yet.

        LanceDB commits a create that lost a race as an overwrite, which would drop what
        the winner wrote since; so the run that writes the creation marker (``IfNoneMatch``)
        creates the table and the others wait for it. A marker left by a run that died
        before creating is taken over once it is older than the wait.
        """
        table = self._open(name)
        if table is not None:
            return table
        marker = layout.lance_creation_key(self.model_tag, name)
        try:
            self.store.put_if_absent(marker, str(time.time()).encode())
        except ConflictError as lost:
            deadline = time.monotonic() + CREATION_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(0.2)
                table = self._open(name)
                if table is not None:
                    return table
            try:
                started = float(self.store.get(marker))
            except (ObjectNotFound, ValueError):
                started = 0.0
            if time.time() - started < CREATION_WAIT_S:
                message = f"{self.uri}/{name} is being created by another run"
                raise StoreUnavailable(message) from lost
            log.warning("taking over the creation of %s/%s", self.uri, name)
        return self._connect().create_table(name, schema=schema, exist_ok=True)

    def _rows_table(self, dim: int) -> Any:
        table = self._create_once(ROWS, row_schema(dim))
        if _dim(table.schema) != dim:
            raise DimensionMismatch(
                f"the {self.model_tag} LanceDB table has {_dim(table.schema)}-d vectors; "
                f"these shards have {dim}-d ones"
            )
        return table

    def _removed_table(self) -> Any:
        return self._create_once(REMOVED, pa.schema([pa.field("key", pa.string(), nullable=False)]))

    def _removed_among(self, keys: Sequence[str]) -> set[str]:
        removed = self._open(REMOVED)
        if removed is None or not keys:
            return set()
        found: set[str] = set()
        for chunk in _chunks(sorted(set(keys))):
            rows = removed.search().where(_key_in(chunk)).select(["key"]).limit(len(chunk))
            found.update(rows.to_arrow().column("key").to_pylist())
        return found

    def _maintain(self, table: Any, rebuilt: bool = False) -> None:
        """Create or update the indexes this table's size calls for (all of them anew
        after a rebuild).

        A failure here (e.g. two runs indexing at once) loses no rows: the next run retries.
        """
        try:
            rows = table.count_rows()
            if rebuilt or not _has_index(table, "key"):
                table.create_index("key", config=BTree())
            if rows >= self.settings.lance_index_min_rows and (
                rebuilt or not _has_index(table, "vector")
            ):
                self._build_vector_index(table, rows)
            if (rebuilt or not _has_index(table, "caption")) and table.count_rows(
                "caption IS NOT NULL"
            ):
                table.create_index("caption", config=FTS())
            elif self._unindexed(table) >= self.settings.lance_optimize_rows:
                table.optimize()
        except Exception:  # noqa: BLE001 - the rows are committed; indexing waits a run
            log.warning("index maintenance of %s deferred", self.uri, exc_info=True)

    def _build_vector_index(self, table: Any, rows: int) -> None:
        partitions = max(1, min(4096, int(np.sqrt(rows))))
        started = time.perf_counter()
        table.create_index(
            "vector", config=IvfSq(distance_type="cosine", num_partitions=partitions)
        )
        log.info(
            "built IVF_SQ index on %s: %d rows, %d partitions in %.1f s",
            self.uri,
            rows,
            partitions,
            time.perf_counter() - started,
        )

    @staticmethod
    def _unindexed(table: Any) -> int:
        most = 0
        for index in table.list_indices():
            stats = table.index_stats(index.name)
            if stats is not None:
                most = max(most, stats.num_unindexed_rows)
        return most


def _committing(action: Callable[[], None]) -> None:
    """Run ``action`` again (on the newest version) when a concurrent commit conflicts.

    LanceDB retries compatible commits itself; this covers the ones it reports as
    incompatible (e.g. a merge racing an index rewrite), which are safe to redo
    because every write here is idempotent.
    """
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            action()
            return
        except (RuntimeError, OSError) as error:
            text = str(error).lower()
            if attempt == COMMIT_ATTEMPTS or not ("conflict" in text or "incompatible" in text):
                raise
            log.info("LanceDB commit conflict (attempt %d), redoing: %s", attempt, error)
            time.sleep(random.uniform(0.05, 0.2) * attempt)


def _unique_rows(shards: Sequence[Shard]) -> tuple[list[str], np.ndarray, list[RowMeta]]:
    keys: list[str] = []
    metas: list[RowMeta] = []
    positions: list[tuple[int, int]] = []
    seen: set[str] = set()
    for shard_number, shard in enumerate(shards):
        for position, row in enumerate(shard.rows):
            if row.key not in seen:
                seen.add(row.key)
                keys.append(row.key)
                metas.append(RowMeta.from_shard_row(row))
                positions.append((shard_number, position))
    if not keys:
        return [], np.empty((0, 0), np.float32), []
    vectors = np.stack([shards[s].vectors[p] for s, p in positions]).astype(np.float32)
    return keys, vectors, metas


def _arrow_rows(metas: list[RowMeta], vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
    columns: dict[str, Any] = {
        name: [getattr(meta, name) for meta in metas] for name in schema.names if name != "vector"
    }
    dim = vectors.shape[1]
    columns["vector"] = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1)), dim
    )
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)


def _has_index(table: Any, column: str) -> bool:
    return any(column in index.columns for index in table.list_indices())


def _dim(schema: pa.Schema) -> int:
    return schema.field("vector").type.list_size


def _key_in(keys: Sequence[str]) -> str:
    return "key IN (" + ", ".join("'" + key.replace("'", "''") + "'" for key in keys) + ")"


def _chunks(keys: Sequence[str]) -> list[Sequence[str]]:
    return [keys[i : i + KEYS_PER_STATEMENT] for i in range(0, len(keys), KEYS_PER_STATEMENT)]
