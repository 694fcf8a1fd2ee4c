"""How far a URL list has moved through download -> embed -> index, read from the bucket.

- download: the list's parts (how many URLs in all) and URL maps (``ok``,
  ``duplicate``, ``failed`` with a reason), read with the download stage's own readers;
- embed: which of the list's images appear in an embedding shard of the model;
- index: which of those shards the current manifest has folded in.

Shard ids files are immutable, and parts and URL maps change only with their
ETag, so each is read once per reader and kept: a refresh lists the list's
prefixes and the shard ids, and reads only what changed since the last one.
While a part is being downloaded, its live counters (``progress/``) count too.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pixsearch import layout
from pixsearch.download.outcome import MapRow
from pixsearch.download.parts import ListPart
from pixsearch.download.progress import rows_in_flight
from pixsearch.download.urlmap import PartMap, read_map, read_summary
from pixsearch.index import manifest
from pixsearch.index.folded import folded_ids
from pixsearch.storage import ObjectStore


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
    total: int | None  # rows in the list, once the download stage has split it
    processed: int  # rows with an outcome: in a URL map, or counted by a part in flight
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
        return self.total is not None

    @property
    def downloads_done(self) -> bool:
        return self.summary is not None or (self.total is not None and self.processed >= self.total)

    @property
    def complete(self) -> bool:
        """Every URL has an outcome and every image of the list is searchable."""
        return self.downloads_done and self.indexed == self.images


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
        self._part_sizes: dict[tuple[str, str], tuple[int, str]] = {}  # rows, list ETag
        self._maps: dict[str, PartMap] = {}
        self._lock = threading.Lock()

    def list_names(self) -> list[str]:
        """Names of the URL lists uploaded under ``urls/``, sorted."""
        return sorted({layout.list_name(info.key) for info in self.store.list(layout.URLS)})

    def index_state(self) -> IndexState:
        current, _ = manifest.read(self.store, self.model_tag)
        return IndexState(
            current.version,
            current.vector_count,
            folded_ids(self.store, current),
            frozenset(current.tombstones),
        )

    def list_progress(self, name: str) -> ListProgress:
        total = self.total_rows(name)
        maps = self.part_maps(name)
        rows = _rows_by_line(maps)
        in_flight = self.rows_in_flight(name, maps)
        stored = [row for row in rows if row.status != "failed" and row.key]
        keys = {row.key for row in stored if row.key}
        shard_keys = self.shard_keys()
        index = self.index_state()
        embedded = keys & frozenset().union(*shard_keys.values())
        in_index = [ids for shard, ids in shard_keys.items() if shard in index.shards]
        indexed = (keys & frozenset().union(*in_index)) - index.tombstones
        return ListProgress(
            name=name,
            total=total,
            processed=len(rows) + in_flight,
            downloaded=len(stored),
            duplicates=sum(row.status == "duplicate" for row in rows),
            failed=sum(row.status == "failed" for row in rows),
            failures=group_failures(rows),
            images=len(keys),
            embedded=len(embedded),
            indexed=len(indexed),
            summary=read_summary(self.store, name),
        )

    def map_rows(self, name: str) -> list[MapRow]:
        """The list's URL map rows, one per input line."""
        return _rows_by_line(self.part_maps(name))

    def part_maps(self, name: str) -> list[PartMap]:
        """The list's URL maps, each read again only when its ETag changed."""
        maps = []
        for info in self.store.list(layout.url_map_prefix(name)):
            try:
                owner, part = layout.parse_url_map_key(info.key)
            except ValueError:
                continue
            if owner != name:
                continue
            cached = self._maps.get(info.key)
            if cached is None or cached.etag != info.etag:
                cached = read_map(self.store, name, part)
                if cached is None:
                    continue
                with self._lock:
                    self._maps[info.key] = cached
            maps.append(cached)
        return maps

    def rows_in_flight(self, name: str, maps: list[PartMap]) -> int:
        """Rows with an outcome in parts being downloaded now (no map of their version yet)."""
        list_etags = {
            etag
            for (key, _), (_, etag) in self._part_sizes.items()
            if layout.parse_part_key(key)[0] == name
        }
        mapped = {(m.list_etag, m.part) for m in maps}
        return sum(
            done
            for etag in list_etags
            for part, done in rows_in_flight(self.store, name, etag).items()
            if (etag, part) not in mapped
        )

    def total_rows(self, name: str) -> int | None:
        """Rows in the list's parts; None until the download stage has split the list."""
        total = None
        for info in self.store.list(f"{layout.PARTS}{name}/"):
            try:
                owner, _ = layout.parse_part_key(info.key)
            except ValueError:
                continue
            if owner != name:
                continue
            cached = self._part_sizes.get((info.key, info.etag))
            if cached is None:
                part = ListPart.from_json(self.store.get(info.key))
                cached = (len(part.rows), part.list_etag)
                with self._lock:
                    self._part_sizes[(info.key, info.etag)] = cached
            total = (total or 0) + cached[0]
        return total

    def shard_keys(self) -> dict[str, frozenset[str]]:
        """Image keys of every embedding shard of the model, by shard id."""
        prefix = layout.embeddings_prefix(self.model_tag)
        for info in self.store.list(prefix):
            if not info.key.endswith(layout.SHARD_IDS_SUFFIX):
                continue
            shard = info.key.removeprefix(prefix).removesuffix(layout.SHARD_IDS_SUFFIX)
            if shard not in self._shard_keys:
                ids = json.loads(self.store.get(info.key))
                keys = frozenset(row["key"] for row in ids.get("rows", []))
                with self._lock:
                    self._shard_keys[shard] = keys
        with self._lock:
            return dict(self._shard_keys)


def _rows_by_line(maps: list[PartMap]) -> list[MapRow]:
    by_line = {row.line: row for part in maps for row in part.rows}
    return [by_line[line] for line in sorted(by_line)]


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
