"""URL maps (one JSONL object per list part) and the per-list summary next to them.

Each map object carries, as metadata, the ETag of the list version it
answers and when its part ran. When the last part of a list version lands, the
part that wrote it finds every map present and writes the summary; each part
writes its map before looking, so the last one always sees them all.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pixsearch import layout
from pixsearch.download.outcome import STATUSES, MapRow, decode_map, encode_map, now_iso
from pixsearch.storage import ConflictError, ObjectNotFound, ObjectStore

LIST_ETAG = "list-etag"
STARTED_AT = "started-at"
FINISHED_AT = "finished-at"
ROWS = "rows"

_JSON = "application/json"
_SUMMARY_ATTEMPTS = 10


@dataclass(frozen=True)
class PartMap:
    part: int
    rows: list[MapRow]
    etag: str
    list_etag: str
    started_at: str
    finished_at: str


def write_map(
    store: ObjectStore,
    list_name: str,
    part: int,
    list_etag: str,
    rows: list[MapRow],
    started_at: str,
) -> str:
    """Store the map of one part; returns its ETag."""
    return store.put(
        layout.url_map_key(list_name, part),
        encode_map(rows),
        content_type="application/x-ndjson",
        metadata={
            LIST_ETAG: list_etag,
            STARTED_AT: started_at,
            FINISHED_AT: now_iso(),
            ROWS: str(len(rows)),
        },
    )


def read_map(store: ObjectStore, list_name: str, part: int) -> PartMap | None:
    try:
        data, info = store.get_with_info(layout.url_map_key(list_name, part))
    except ObjectNotFound:
        return None
    return PartMap(
        part=part,
        rows=decode_map(data),
        etag=info.etag,
        list_etag=info.metadata.get(LIST_ETAG, ""),
        started_at=info.metadata.get(STARTED_AT, ""),
        finished_at=info.metadata.get(FINISHED_AT, ""),
    )


def read_maps(store: ObjectStore, list_name: str) -> list[PartMap]:
    """Every map of ``list_name``, in part order."""
    numbers = []
    for info in store.list(layout.url_map_prefix(list_name)):
        try:
            owner, number = layout.parse_url_map_key(info.key)
        except ValueError:
            continue
        if owner == list_name:
            numbers.append(number)
    maps = [read_map(store, list_name, number) for number in sorted(numbers)]
    return [m for m in maps if m is not None]


def write_summary_if_complete(
    store: ObjectStore, list_key: str, list_etag: str, parts: int
) -> dict[str, Any] | None:
    """Write the list's summary if every part of this list version has its map.

    The write is conditional on the summary being the one there before the maps
    were read, so when parts finish together, a summary computed from older maps
    can never overwrite one computed from newer maps.
    """
    name = layout.list_name(list_key)
    for _ in range(_SUMMARY_ATTEMPTS):
        before = store.head(layout.summary_key(name))
        maps = [read_map(store, name, part) for part in range(parts)]
        complete = [m for m in maps if m is not None and m.list_etag == list_etag]
        if len(complete) < parts:
            return None
        summary = summarize(list_key, list_etag, complete)
        body = json.dumps(summary, indent=2).encode()
        try:
            if before is None:
                store.put_if_absent(layout.summary_key(name), body, content_type=_JSON)
            else:
                store.replace_if_match(
                    layout.summary_key(name), body, before.etag, content_type=_JSON
                )
        except ConflictError:
            continue
        return summary
    raise RuntimeError(f"summary of {list_key} kept changing under {_SUMMARY_ATTEMPTS} attempts")


def summarize(list_key: str, list_etag: str, maps: list[PartMap]) -> dict[str, Any]:
    """Counts by status and reason, success rate, wall-clock duration and images/s."""
    rows = [row for m in maps for row in m.rows]
    statuses = Counter(row.status for row in rows)
    reasons = Counter(row.error for row in rows if row.status == "failed")
    images = statuses["ok"] + statuses["duplicate"]
    started = min((m.started_at for m in maps if m.started_at), default="")
    finished = max((m.finished_at for m in maps if m.finished_at), default="")
    duration = _seconds_between(started, finished)
    return {
        "list": layout.list_name(list_key),
        "list_key": list_key,
        "list_etag": list_etag,
        "parts": len(maps),
        "urls": len(rows),
        "counts": {status: statuses[status] for status in STATUSES},
        "failed_by_reason": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
        "success_rate": round(images / len(rows), 4) if rows else None,
        "started_at": started,
        "finished_at": finished,
        "duration_s": round(duration, 3),
        "images_per_s": round(images / duration, 2) if duration > 0 else None,
        "part_maps": {f"{m.part:05d}": m.etag for m in maps},
    }


def read_summary(store: ObjectStore, list_name: str) -> dict[str, Any] | None:
    try:
        return json.loads(store.get(layout.summary_key(list_name)))
    except ObjectNotFound:
        return None


def _seconds_between(start: str, end: str) -> float:
    if not start or not end:
        return 0.0
    parse = datetime.fromisoformat
    return max(
        0.0,
        (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds(),
    )
