"""The download stage's work for one object event: a URL list, or one part of a long one.

A list is parsed and cut into parts of ``download_chunk_size`` rows. A list of
one part is downloaded in the same invocation; longer lists queue their parts,
one invocation each. Running a part again is idempotent and cheap: rows that
already ended ``ok`` or ``duplicate`` in this list version's map are kept, and
only the others are fetched again (which is also how failed rows are retried).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pixsearch import layout, topology
from pixsearch.config import Settings
from pixsearch.download.budget import DownloadLimits
from pixsearch.download.downloader import Downloader
from pixsearch.download.outcome import DownloadFailure, MapRow, now_iso
from pixsearch.download.parts import ListPart, queue_parts, read_part, split, write_parts
from pixsearch.download.progress import PartProgress
from pixsearch.download.sink import BucketSink
from pixsearch.download.urllist import BadRow, UrlEntry, UrlListError, parse_url_list_stream
from pixsearch.download.urlmap import read_map, write_map, write_summary_if_complete
from pixsearch.events import ObjectEvent
from pixsearch.storage import ObjectNotFound, ObjectStore, client

log = logging.getLogger(__name__)

TimeLeft = Callable[[], float]
"""Seconds the invocation has left (Lambda's ``get_remaining_time_in_millis`` / 1000)."""


@dataclass
class DownloadStage:
    settings: Settings
    store: ObjectStore
    time_left_s: TimeLeft

    def handle(self, event: ObjectEvent) -> None:
        """Process a created URL list or list part; other events are logged and skipped."""
        if not event.is_creation or event.key.endswith("/"):
            log.info("skipping %s of %s", event.event_name, event.key)
        elif event.key.startswith(layout.PARTS):
            self.process_part_key(event.key)
        elif event.key.startswith(layout.URLS):
            self.process_list(event.key)
        else:
            raise ValueError(f"the download stage takes urls/ and parts/ keys, not {event.key!r}")

    def process_list(self, key: str) -> None:
        try:
            chunks, info = self.store.stream(key)
        except ObjectNotFound:
            log.warning("URL list %s is gone; nothing to do", key)
            return
        try:
            rows = parse_url_list_stream(
                chunks,
                key,
                url_column=self.settings.download_url_column,
                caption_column=self.settings.download_caption_column,
                max_bytes=DownloadLimits.from_settings(self.settings).list_max_bytes,
            )
        except UrlListError as error:
            log.error("URL list %s cannot be parsed: %s", key, error)
            rows = [BadRow(0, "", "unparseable_list", str(error))]
        parts = split(key, info.etag, rows, self.settings.download_chunk_size)
        etags = write_parts(self.store, parts)
        log.info("URL list %s: %d rows in %d part(s)", key, len(rows), len(parts))
        if len(parts) == 1:
            self.process_part(parts[0])
        else:
            queue_list_parts(self.settings, self.store.bucket, etags)

    def process_part_key(self, key: str) -> None:
        try:
            part = read_part(self.store, key)
        except ObjectNotFound:
            log.warning("list part %s is gone; nothing to do", key)
            return
        self.process_part(part)

    def process_part(self, part: ListPart) -> list[MapRow]:
        """Download one part, write its map, and the list summary if this part completes it."""
        started_at = now_iso()
        kept = self._kept_rows(part)
        pending = [entry for entry in part.entries if entry.line not in kept]
        budget = self.time_left_s() - self.settings.download_deadline_margin_s
        progress = PartProgress(
            self.store, part, already_done=len(part.rows) - len(pending)
        ).start()
        try:
            fetched = Downloader(self.settings, BucketSink(self.store), on_row=progress.add).run(
                pending, timeout_s=max(1.0, budget)
            )
            by_line = {**kept, **{row.line: row for row in fetched}}
            rows = [
                by_line[row.line]
                if isinstance(row, UrlEntry)
                else MapRow.failed(row.line, row.raw, DownloadFailure(row.reason, row.message))
                for row in part.rows
            ]
            write_map(self.store, part.list_name, part.part, part.list_etag, rows, started_at)
        finally:
            progress.stop()
        log.info(
            "part %d/%d of %s: %d fetched, %d kept from an earlier run",
            part.part + 1,
            part.parts,
            part.list_key,
            len(pending),
            len(kept),
        )
        summary = write_summary_if_complete(self.store, part.list_key, part.list_etag, part.parts)
        if summary is not None:
            log.info("URL list %s done: %s", part.list_key, summary["counts"])
        return rows

    def _kept_rows(self, part: ListPart) -> dict[int, MapRow]:
        earlier = read_map(self.store, part.list_name, part.part)
        if earlier is None or earlier.list_etag != part.list_etag:
            return {}
        urls = {entry.line: entry.url for entry in part.entries}
        return {
            row.line: row
            for row in earlier.rows
            if row.status != "failed" and urls.get(row.line) == row.url
        }


def queue_list_parts(settings: Settings, bucket: str, part_etags: dict[str, str]) -> None:
    """Announce list parts on the download queue, one invocation each."""
    sqs = client("sqs", settings.region)
    queue_url = sqs.get_queue_url(QueueName=topology.queue_name(settings, "download"))["QueueUrl"]
    queue_parts(sqs, queue_url, bucket, settings.region, part_etags)
