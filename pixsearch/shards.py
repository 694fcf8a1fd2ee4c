"""The embedding shard format the embed stage writes and the index stage reads.

``{shard}.ids.json`` (who the rows are) and ``{shard}.npy`` (the vectors).

The ids file is written first, so whoever sees the ``.npy`` (the index stage,
triggered by its creation) can always read the rows' identities. Both are
immutable and named by a digest of the batch's ``(key, etag, last modified)``
triples, so a redelivered batch writes nothing new, while an image deleted and
uploaded again with the same bytes makes a new shard (and so a new index event).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pixsearch import layout
from pixsearch.storage import ConflictError, ObjectStore

FORMAT = 1


class InvalidShard(ValueError):
    """A shard whose ids file and vectors disagree or cannot be read."""


@dataclass(frozen=True)
class ShardRow:
    key: str
    etag: str
    source_url: str | None
    width: int
    height: int
    modified: str = ""  # the image object's Last-Modified (ISO 8601): which upload this is

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.key, self.etag, self.modified) if self.modified else (self.key, self.etag)


@dataclass(frozen=True)
class Shard:
    shard_id: str
    model_tag: str
    rows: tuple[ShardRow, ...]
    vectors: np.ndarray  # (len(rows), dim) float32, unit rows

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def shard_id(identities: Iterable[tuple[str, ...]]) -> str:
    """A deterministic id for a batch: the same set of row identities gives the same id."""
    digest = hashlib.sha256("\n".join("\t".join(i) for i in sorted(set(identities))).encode())
    return digest.hexdigest()[:32]


def write(store: ObjectStore, model_tag: str, rows: list[ShardRow], vectors: np.ndarray) -> str:
    """Write ids file then vectors (each only if absent); returns the shard id."""
    if len(rows) != len(vectors):
        raise ValueError(f"{len(rows)} rows but {len(vectors)} vectors")
    identifier = shard_id(row.identity for row in rows)
    ids = {
        "format": FORMAT,
        "model_tag": model_tag,
        "dim": int(vectors.shape[1]),
        "count": len(rows),
        "rows": [asdict(row) for row in rows],
    }
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    for key, data, content_type in (
        (layout.shard_ids_key(model_tag, identifier), json.dumps(ids).encode(), "application/json"),
        (layout.shard_key(model_tag, identifier), buffer.getvalue(), "application/octet-stream"),
    ):
        with contextlib.suppress(ConflictError):  # identical content
            store.put_if_absent(key, data, content_type=content_type)
    return identifier


def read(store: ObjectStore, model_tag: str, identifier: str) -> Shard:
    """Read and cross-check a shard; :class:`InvalidShard` if the two files disagree."""
    ids_key = layout.shard_ids_key(model_tag, identifier)
    try:
        ids: dict[str, Any] = json.loads(store.get(ids_key))
        vectors = np.load(
            io.BytesIO(store.get(layout.shard_key(model_tag, identifier))), allow_pickle=False
        )
        rows = tuple(ShardRow(**row) for row in ids["rows"])
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidShard(
            f"shard {ids_key}: unreadable ({type(error).__name__}: {error})"
        ) from None
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise InvalidShard(f"shard {identifier}: vectors are {vectors.dtype} {vectors.shape}")
    if ids.get("model_tag") != model_tag or ids.get("dim") != vectors.shape[1]:
        raise InvalidShard(
            f"shard {identifier}: ids say tag {ids.get('model_tag')!r} dim {ids.get('dim')}, "
            f"expected {model_tag!r} and the vectors have dim {vectors.shape[1]}"
        )
    if len(rows) != len(vectors) or ids.get("count") != len(rows):
        raise InvalidShard(f"shard {identifier}: {len(rows)} ids but {len(vectors)} vectors")
    return Shard(identifier, model_tag, rows, vectors)
