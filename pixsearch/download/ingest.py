"""``pixsearch ingest``: upload a URL list, follow it to the end, print its summary.

``--retry-failed`` re-queues only the parts of a finished list that have failed
rows; the download stage keeps their finished rows and fetches the failed ones
again, then rewrites the map and the summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.download.progress import rows_in_flight
from pixsearch.download.stage import queue_list_parts
from pixsearch.download.urllist import UrlListError, list_format, parse_url_list
from pixsearch.download.urlmap import LIST_ETAG, ROWS, read_maps, read_summary
from pixsearch.storage import ObjectStore

POLL_S = 1.0
# Once every image of the list is embedded only its last index run is awaited, which
# takes a fraction of a second: looking more often ends the wait when it does.
LAST_INDEX_POLL_S = 0.2


class IngestError(RuntimeError):
    """The command cannot go on; the message says what to do."""


@dataclass
class Progress:
    done: int
    total: int


def ingest(
    path: Path,
    settings: Settings,
    *,
    name: str | None = None,
    timeout_s: float | None = None,
    wait: bool = True,
    out: TextIO | None = None,
) -> dict[str, Any] | None:
    """Upload ``path`` to ``urls/``; unless ``wait`` is false, follow it until every image is
    searchable (download, embed, index) and return the list's summary."""
    out = out or sys.stderr
    key = f"{layout.URLS}{name or path.name}"
    data = path.read_bytes()
    try:
        list_format(key)
        rows = parse_url_list(
            data,
            key,
            url_column=settings.download_url_column,
            caption_column=settings.download_caption_column,
        )
    except UrlListError as error:
        raise IngestError(str(error)) from None
    store = ObjectStore.from_settings(settings)
    list_name = layout.list_name(key)
    # Re-uploading identical content gives the same ETag: wait for maps newer than these.
    earlier = read_summary(store, list_name) or {}
    old_maps = set(earlier.get("part_maps", {}).values())
    etag = store.put(key, data)
    print(f"uploaded {len(rows)} URLs to s3://{store.bucket}/{key}", file=out)

    def finished() -> dict[str, Any] | None:
        summary = read_summary(store, list_name)
        if not summary or summary.get("list_etag") != etag:
            return None
        return None if old_maps & set(summary["part_maps"].values()) else summary

    if not wait:
        return None

    def progress() -> Progress:
        mapped = {
            layout.parse_url_map_key(info.key)[1]: int(info.metadata.get(ROWS, "0"))
            for info in _map_heads(store, list_name)
            if info.metadata.get(LIST_ETAG) == etag and info.etag not in old_maps
        }
        in_flight = rows_in_flight(store, list_name, etag)
        done = sum(mapped.values()) + sum(n for p, n in in_flight.items() if p not in mapped)
        return Progress(done, len(rows))

    started = time.monotonic()
    summary = _follow(finished, progress, "URLs", timeout_s, out)
    follow_to_searchable(store, settings, list_name, started, timeout_s, out)
    return summary


def follow_to_searchable(
    store: ObjectStore,
    settings: Settings,
    list_name: str,
    started: float,
    timeout_s: float | None,
    out: TextIO,
) -> None:
    """Show how many of the list's images are embedded and searchable, until all are."""
    from pixsearch.webui.progress import ProgressReader

    reader = ProgressReader(store, settings.model_tag)
    deadline = None if timeout_s is None else started + timeout_s
    state = reader.list_progress(list_name)
    bars = {
        stage: tqdm(total=state.images, unit="image", desc=stage, file=out)
        for stage in ("embedded", "searchable")
    }
    try:
        while True:
            bars["embedded"].update(state.embedded - bars["embedded"].n)
            bars["searchable"].update(state.indexed - bars["searchable"].n)
            if state.indexed >= state.images:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise IngestError(
                    f"{state.indexed} of {state.images} images searchable after "
                    f"{timeout_s:.0f}s; are the embed and index stages running? "
                    "Check `pixsearch status`."
                )
            time.sleep(LAST_INDEX_POLL_S if state.embedded >= state.images else POLL_S)
            state = reader.list_progress(list_name)
    finally:
        for bar in bars.values():
            bar.close()
    print(
        f"{state.indexed} images searchable {time.monotonic() - started:.1f}s after upload",
        file=out,
    )


def retry_failed(
    list_ref: str,
    settings: Settings,
    *,
    timeout_s: float | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Re-queue the parts of a finished list that have failed rows; wait for the new summary."""
    out = out or sys.stderr
    store = ObjectStore.from_settings(settings)
    list_name = layout.list_name(list_ref) if list_ref.startswith(layout.URLS) else list_ref
    summary = read_summary(store, list_name)
    if summary is None:
        raise IngestError(
            f"list {list_name!r} has no summary yet: it is unknown or still running "
            f"(see maps/{list_name}/)"
        )
    failed_parts = {
        m.part: sum(row.status == "failed" for row in m.rows)
        for m in read_maps(store, list_name)
        if m.list_etag == summary["list_etag"] and any(row.status == "failed" for row in m.rows)
    }
    if not failed_parts:
        print(f"{list_name}: no failed rows to retry", file=out)
        return summary
    etags = {}
    for part in failed_parts:
        info = store.head(layout.part_key(list_name, part))
        if info is None:
            raise IngestError(f"part {part} of {list_name!r} is missing; upload the list again")
        etags[info.key] = info.etag
    before = dict(summary["part_maps"])
    queue_list_parts(settings, store.bucket, etags)
    print(
        f"re-queued {sum(failed_parts.values())} failed URLs in {len(failed_parts)} part(s) "
        f"of {list_name}",
        file=out,
    )
    changed = [f"{part:05d}" for part in failed_parts]

    def finished() -> dict[str, Any] | None:
        latest = read_summary(store, list_name)
        if latest is None:
            return None
        maps = latest.get("part_maps", {})
        return latest if all(maps.get(p) != before.get(p) for p in changed) else None

    def progress() -> Progress:
        latest = read_summary(store, list_name) or {}
        maps = latest.get("part_maps", {})
        done = sum(
            failed_parts[int(p)] for p in changed if maps.get(p) not in (None, before.get(p))
        )
        return Progress(done, sum(failed_parts.values()))

    return _follow(finished, progress, "URLs", timeout_s, out)


def render_summary(summary: dict[str, Any]) -> str:
    counts = summary["counts"]
    lines = [
        f"{summary['list']}: {summary['urls']} URLs in {summary['parts']} part(s)",
        f"  fetched     {counts['ok']}",
        f"  duplicates  {counts['duplicate']}",
        f"  failed      {counts['failed']}",
    ]
    lines += [f"    {reason:<20} {n}" for reason, n in summary["failed_by_reason"].items()]
    rate = summary.get("success_rate")
    speed = summary.get("images_per_s")
    lines.append(
        f"  success rate {rate:.1%}" if rate is not None else "  success rate n/a (empty list)"
    )
    lines.append(
        f"  took {summary['duration_s']:.1f}s" + (f", {speed:.1f} images/s" if speed else "")
    )
    if counts["failed"]:
        lines.append(f"  retry failed rows: pixsearch ingest --retry-failed {summary['list']}")
    return "\n".join(lines)


def _follow(
    finished: Callable[[], dict[str, Any] | None],
    progress: Callable[[], Progress],
    unit: str,
    timeout_s: float | None,
    out: TextIO,
) -> dict[str, Any]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    start = progress()
    with tqdm(total=start.total, unit=unit[:-1], desc="downloading", file=out) as bar:
        while True:
            summary = finished()
            if summary is not None:
                bar.update(bar.total - bar.n)
                return summary
            bar.update(max(0, progress().done - bar.n))
            if deadline is not None and time.monotonic() > deadline:
                raise IngestError(
                    f"not finished within {timeout_s:.0f}s; is the download stage running "
                    "(`pixsearch up`, or the deployed function)? Check `pixsearch status`."
                )
            time.sleep(POLL_S)


def _map_heads(store: ObjectStore, list_name: str) -> list[Any]:
    heads = []
    for info in store.list(layout.url_map_prefix(list_name)):
        try:
            owner, _ = layout.parse_url_map_key(info.key)
        except ValueError:
            continue
        if owner == list_name:
            head = store.head(info.key)
            if head is not None:
                heads.append(head)
    return heads


def command(
    *,
    file: Path | None,
    retry_failed_list: str | None,
    name: str | None,
    timeout_s: float | None,
    settings: Settings,
    wait: bool = True,
) -> int:
    """``pixsearch ingest``: exit status 0 when the list finished, 1 when it could not."""
    try:
        if retry_failed_list:
            summary = retry_failed(retry_failed_list, settings, timeout_s=timeout_s)
        elif file is not None:
            summary = ingest(file, settings, name=name, timeout_s=timeout_s, wait=wait)
        else:
            raise IngestError("give a URL list file, or --retry-failed LIST")
    except (IngestError, OSError) as error:
        print(f"pixsearch ingest: {error}", file=sys.stderr)
        return 1
    if summary is not None:
        print(render_summary(summary))
    return 0
