"""What every indexed row carries besides its vector, and its columns in both engines.

One row per image: the image key, where it came from (source URL and domain,
URL list, fetch time), its size, and the caption its list gave it. The embed
stage records these in shard rows; both engines store them as columns and
return them with every hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from pixsearch.origin import source_domain
from pixsearch.shards import ShardRow

METADATA_FIELDS = (
    pa.field("list_name", pa.string()),
    pa.field("source_domain", pa.string()),
    pa.field("bytes", pa.int64()),
    pa.field("fetched_at_ms", pa.int64()),  # epoch milliseconds, UTC
    pa.field("caption", pa.string()),
)
"""Columns beyond key, source URL, width and height (which every engine always had)."""

METADATA_COLUMNS = tuple(column.name for column in METADATA_FIELDS)


@dataclass(frozen=True)
class RowMeta:
    key: str
    source_url: str | None = None
    list_name: str | None = None
    source_domain: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    fetched_at_ms: int | None = None
    caption: str | None = None

    @classmethod
    def from_shard_row(cls, row: ShardRow) -> RowMeta:
        return cls(
            key=row.key,
            source_url=row.source_url,
            list_name=row.list_name,
            source_domain=source_domain(row.source_url),
            width=row.width,
            height=row.height,
            bytes=row.bytes,
            fetched_at_ms=iso_to_ms(row.fetched_at),
            caption=row.caption,
        )

    @classmethod
    def from_columns(cls, record: Mapping[str, Any]) -> RowMeta:
        """From one row of either engine's columns (missing columns are unknown)."""
        return cls(**{name: record.get(name) for name in cls.__dataclass_fields__})

    @property
    def fetched_at(self) -> str | None:
        return ms_to_iso(self.fetched_at_ms)


def iso_to_ms(value: str | None) -> int | None:
    """Epoch milliseconds of an ISO 8601 time (``Z`` or an offset; naive means UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def ms_to_iso(value: int | None) -> str | None:
    if value is None:
        return None
    moment = datetime.fromtimestamp(value / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
