"""The LanceDB tables of one model in the bucket: connection, schema, opening, creation.

``index/{model-tag}/lance/rows.lance`` holds a row per image (vector and
metadata); ``removed.lance`` the keys of removed images, so a shard delivered
after its image's removal adds nothing. Also here: the Arrow rows written to
them and the SQL key predicates the writers use.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.shards import Shard
from pixsearch.storage import ConflictError, ObjectNotFound, ObjectStore
from pixsearch.vectorstore.port import DimensionMismatch, StoreUnavailable
from pixsearch.vectorstore.rows import METADATA_FIELDS, RowMeta

log = logging.getLogger(__name__)

ROWS = "rows"
REMOVED = "removed"
KEYS_PER_STATEMENT = 500
CREATION_WAIT_S = 30.0  # how long a run waits for another to create a table


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


class LanceTables:
    """The ``rows`` and ``removed`` tables under ``index/{model-tag}/lance/``."""

    def __init__(self, settings: Settings, store: ObjectStore, model_tag: str) -> None:
        self.settings = settings
        self.store = store
        self.model_tag = model_tag
        self.uri = f"s3://{store.bucket}/{layout.lance_prefix(model_tag)}"
        self._db: Any = None
        # LanceDB's caches, bounded by settings (its defaults: 6 GiB of index, 1 GiB of
        # metadata), so that search memory does not grow with the table past them.
        self.session = lancedb.Session(
            index_cache_size_bytes=settings.lance_index_cache_mb * 2**20,
            metadata_cache_size_bytes=settings.lance_metadata_cache_mb * 2**20,
        )

    def connect(self) -> Any:
        if self._db is None:
            options = storage_options(self.settings)
            self._db = lancedb.connect(self.uri, storage_options=options, session=self.session)
        return self._db

    def open(self, name: str) -> Any:
        """The table ``name`` at its newest version; None if it was never created."""
        try:
            return self.connect().open_table(name)
        except ValueError as error:
            if "not found" in str(error).lower():
                return None
            raise

    def create_once(self, name: str, schema: pa.Schema) -> Any:
        """Table ``name``, created by exactly one run when it does not exist yet.

        LanceDB commits a create that lost a race as an overwrite, which would drop what
        the winner wrote since; so the run that writes the creation marker (``IfNoneMatch``)
        creates the table and the others wait for it. A marker left by a run that died
        before creating is taken over once it is older than the wait.
        """
        table = self.open(name)
        if table is not None:
            return table
        marker = layout.lance_creation_key(self.model_tag, name)
        try:
            self.store.put_if_absent(marker, str(time.time()).encode())
        except ConflictError as lost:
            deadline = time.monotonic() + CREATION_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(0.2)
                table = self.open(name)
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
        return self.connect().create_table(name, schema=schema, exist_ok=True)

    def rows(self, dim: int) -> Any:
        """The rows table (created on first use), refusing vectors of another dimension."""
        table = self.create_once(ROWS, row_schema(dim))
        if vector_dim(table.schema) != dim:
            raise DimensionMismatch(
                f"the {self.model_tag} LanceDB table has {vector_dim(table.schema)}-d vectors; "
                f"these shards have {dim}-d ones"
            )
        return table

    def removed(self) -> Any:
        return self.create_once(REMOVED, pa.schema([pa.field("key", pa.string(), nullable=False)]))

    def removed_among(self, keys: Sequence[str]) -> set[str]:
        removed = self.open(REMOVED)
        if removed is None or not keys:
            return set()
        found: set[str] = set()
        for chunk in chunks(sorted(set(keys))):
            rows = removed.search().where(key_in(chunk)).select(["key"]).limit(len(chunk))
            found.update(rows.to_arrow().column("key").to_pylist())
        return found


def unique_rows(shards: Sequence[Shard]) -> tuple[list[str], np.ndarray, list[RowMeta]]:
    """The first row of each key across ``shards``: keys, vectors, metadata."""
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


def arrow_rows(metas: list[RowMeta], vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
    columns: dict[str, Any] = {
        name: [getattr(meta, name) for meta in metas] for name in schema.names if name != "vector"
    }
    dim = vectors.shape[1]
    columns["vector"] = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1)), dim
    )
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)


def vector_dim(schema: pa.Schema) -> int:
    return schema.field("vector").type.list_size


def key_in(keys: Sequence[str]) -> str:
    return "key IN (" + ", ".join("'" + key.replace("'", "''") + "'" for key in keys) + ")"


def chunks(keys: Sequence[str]) -> list[Sequence[str]]:
    return [keys[i : i + KEYS_PER_STATEMENT] for i in range(0, len(keys), KEYS_PER_STATEMENT)]
