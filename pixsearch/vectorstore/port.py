"""The VectorStore port: what the index stage writes through and the search function reads.

Two engines implement it (``PIXSEARCH_VECTOR_STORE``): ``faiss`` (immutable
segments and a manifest in the bucket, loaded into memory by search) and
``lancedb`` (one LanceDB table in the bucket, queried where it lies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pixsearch.shards import Shard
from pixsearch.vectorstore.filters import Filter
from pixsearch.vectorstore.rows import RowMeta


class StoreUnavailable(LookupError):
    """Nothing to search yet, or the store cannot be read; the message says which."""


class DimensionMismatch(ValueError):
    """Vectors whose dimension is not the store's (a model change needs a rebuild)."""


@dataclass(frozen=True)
class Hit:
    key: str
    score: float  # cosine similarity to the query vector
    meta: RowMeta


@dataclass(frozen=True)
class Found:
    hits: list[Hit]
    version: int | str  # the version of the store that answered


@dataclass(frozen=True)
class Description:
    engine: str
    version: int | str | None = None
    vector_count: int | None = None
    segment_count: int | None = None  # FAISS segments, or LanceDB fragments
    loaded_at: float | None = None  # wall-clock time the served version was opened
    checked_at: float | None = None  # monotonic time of the last check for a newer one
    problem: str | None = None  # why the served version is not the newest, or not usable
    indexed: bool | None = None  # whether an ANN index covers the rows


class VectorStore(Protocol):
    engine: str

    def add(self, shards: Sequence[Shard]) -> None:
        """Add the rows of ``shards`` (a key already present, or removed, is not added)."""
        ...

    def remove(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` whose image is gone, so that no late shard brings them back."""
        ...

    def search(
        self, vector: np.ndarray, k: int, where: Filter | None = None, text: str | None = None
    ) -> Found:
        """Top ``k`` rows matching ``where``; with ``text``, fused with the caption ranking."""
        ...

    def count(self) -> int: ...

    def describe(self) -> Description:
        """What search is served from now (checking for a newer version if one is due)."""
        ...

    def refresh(self) -> None:
        """Load the newest version for search now (warm-up)."""
        ...
