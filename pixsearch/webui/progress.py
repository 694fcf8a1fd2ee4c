"""How far a URL list has moved through download -> embed -> index, read from the bucket.

- download: the list's URL map rows (``ok``, ``duplicate``, ``failed`` with a reason);
- embed: which of the list's images appear in an embedding shard of the model;
- index: which of those shards the current manifest has folded in.

Shard ids files are immutable, so each is read once per reader and kept.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pixsearch import layout
from pixsearch.download.outcome import MapRow, decode_map
from pixsearch.index import manifest
from pixsearch.storage import ObjectNotFound, ObjectStore


@dataclass(frozen=True)
class FailureGroup:
    """The failed URLs of one reason code, with one example to show."""

    reason: str
    count: int
    example_url: str
    example_message: str | None


@dataclass(frozen=True)
class ListProgress:
    name: str
    uploaded: bool
    urls: int  # URLs with a URL map row so far
    downloaded: int  # rows whose image is in the bucket (new or already there)
    duplicates: int
    failed: int
    failures: tuple[FailureGroup, ...]
    images: int  # distinct images of the list
    embedded: int
    indexed: int
    summary: dict[str, Any] | None = None

    @property
    def started(self) -> bool:
        return self.urls > 0 or self.summary is not None

    @property
    def complete(self) -> bool:
        """Every URL has a row and every image of the list is searchable."""
        return self.started and self.indexed == self.images


@dataclass(frozen=True)
class IndexState:
    version: int
    vector_count: int
    shards: frozenset[str] = field(default_factory=frozenset)
    tombstones: frozenset[str] = field(default_factory=frozenset)


class ProgressReader:
    def __init__(self, store: ObjectStore, model_tag: str) -> None:
        self.store = store
        self.model_tag = model_tag
        self._shard_keys: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def list_names(self) -> list[str]:
        """Names of the URL lists uploaded under ``urls/``, sorted."""
        return sorted({layout.list_name(info.key) for info in self.store.list(layout.URLS)})

    def index_state(self) -> IndexState:
        current, _ = manifest.read(self.store, self.model_tag)
        return IndexState(current.version, current.vector_count, current.shards, current.tombstones)

    def list_progress(self, name: str) -> ListProgress:
        rows = self.map_rows(name)
        stored = [row for row in rows if row.status != "failed" and row.key]
        keys = {row.key for row in stored if row.key}
        shard_keys = self.shard_keys()
        index = self.index_state()
        embedded = set().union(*shard_keys.values()) & keys if shard_keys else set()
        indexed_shards = [ids for shard, ids in shard_keys.items() if shard in index.shards]
        indexed = (set().union(*indexed_shards) & keys) - index.tombstones
        return ListProgress(
            name=name,
            uploaded=any(
                layout.list_name(info.key) == name
                for info in self.store.list(f"{layout.URLS}{name}.")
            ),
            urls=len(rows),
            downloaded=len(stored),
            duplicates=sum(row.status == "duplicate" for row in rows),
            failed=len(rows) - len(stored),
            failures=group_failures(rows),
            images=len(keys),
            embedded=len(embedded),
            indexed=len(indexed),
            summary=self._summary(name),
        )

    def map_rows(self, name: str) -> list[MapRow]:
        """The list's URL map rows, one per input line (a rewritten part replaces its rows)."""
        by_line: dict[int, MapRow] = {}
        for info in self.store.list(layout.url_map_prefix(name)):
            if info.key == layout.summary_key(name) or not info.key.endswith(".jsonl"):
                continue
            for row in decode_map(self.store.get(info.key)):
                by_line[row.line] = row
        return [by_line[line] for line in sorted(by_line)]

    def shard_keys(self) -> dict[str, frozenset[str]]:
        """Image keys of every embedding shard of the model, by shard id."""
        prefix = layout.embeddings_prefix(self.model_tag)
        for info in self.store.list(prefix):
            if not info.key.endswith(layout.SHARD_IDS_SUFFIX):
                continue
            shard = info.key.removeprefix(prefix).removesuffix(layout.SHARD_IDS_SUFFIX)
            if shard not in self._shard_keys:
                keys = self._read_shard_keys(info.key)
                with self._lock:
                    self._shard_keys[shard] = keys
        with self._lock:
            return dict(self._shard_keys)

    def _read_shard_keys(self, key: str) -> frozenset[str]:
        ids = json.loads(self.store.get(key))
        return frozenset(row["key"] for row in ids.get("rows", []))

    def _summary(self, name: str) -> dict[str, Any] | None:
        try:
            summary = json.loads(self.store.get(layout.summary_key(name)))
        except (ObjectNotFound, ValueError):
            return None
        return summary if isinstance(summary, dict) else None


def group_failures(rows: list[MapRow]) -> tuple[FailureGroup, ...]:
    """Failed rows grouped by reason code, the most frequent first."""
    failed = [row for row in rows if row.status == "failed"]
    counts = Counter(row.error or "unknown" for row in failed)
    first: dict[str, MapRow] = {}
    for row in failed:
        first.setdefault(row.error or "unknown", row)
    return tuple(
        FailureGroup(reason, count, first[reason].url, first[reason].message)
        for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    )
