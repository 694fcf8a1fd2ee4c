"""URL entries -> URL map rows: fetch, validate, store, with bounded concurrency and a watchdog.

Concurrency is bounded three times. A per-host semaphore covers the HTTP
exchange, and it is taken *before* a global slot, so URLs queued behind a slow
host wait without holding slots other hosts could use. The global slot covers
fetch, validation and storage. And every body reserves its bytes from the
memory budget's pool (:mod:`~pixsearch.download.budget`) until its image is
stored. Pillow work runs in a thread pool sized by that budget (decoders
release the GIL) and blocking object-store writes in another.

The watchdog: every URL's fetch is bounded by ``download_total_timeout_s``, and
the whole run by ``deadline``; URLs still pending then are cancelled and get a
``deadline`` row, so every entry always ends with exactly one row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from yarl import URL

from pixsearch import images
from pixsearch.config import Settings
from pixsearch.download.budget import BytePool, DownloadLimits, decoded_bytes
from pixsearch.download.fetch import Fetcher
from pixsearch.download.outcome import DownloadFailure, MapRow, now_iso
from pixsearch.download.sink import ImageSink
from pixsearch.download.urllist import UrlEntry
from pixsearch.origin import ImageOrigin

log = logging.getLogger(__name__)


@dataclass
class Downloader:
    """Downloads entries into ``sink``; one instance per invocation."""

    settings: Settings
    sink: ImageSink
    list_name: str | None = None  # recorded with every image this run stores
    store_threads: int = 8
    limits: DownloadLimits | None = None
    """What the memory budget allows (derived from the settings at the start of a run)."""
    on_row: Callable[[MapRow], None] | None = None  # told of each row as it finishes

    def run(self, entries: Sequence[UrlEntry], timeout_s: float | None = None) -> list[MapRow]:
        """Rows for ``entries`` in the same order; returns within ``timeout_s`` (plus cleanup)."""
        return asyncio.run(self.download(entries, timeout_s))

    async def download(
        self, entries: Sequence[UrlEntry], timeout_s: float | None = None
    ) -> list[MapRow]:
        host_slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self.settings.download_per_host_concurrency)
        )
        slots = asyncio.Semaphore(self.settings.download_concurrency)
        limits = self.limits or DownloadLimits.from_settings(self.settings)
        cpu = ThreadPoolExecutor(limits.decode_threads, "validate")
        io = ThreadPoolExecutor(self.store_threads, "store")
        try:
            async with Fetcher(self.settings, BytePool(limits.body_pool_bytes)) as fetcher:
                decodes = BytePool(limits.decode_pool_bytes)
                run = _Run(self, fetcher, host_slots, slots, cpu, io, decodes)
                tasks = [asyncio.create_task(run.one(entry)) for entry in entries]
                if not tasks:
                    return []
                done, pending = await asyncio.wait(tasks, timeout=timeout_s)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending)
                    log.warning(
                        "deadline reached with %d of %d URLs pending", len(pending), len(tasks)
                    )
        finally:
            # Work already handed to a thread finishes on its own; nothing waits for it.
            cpu.shutdown(wait=False, cancel_futures=True)
            io.shutdown(wait=False, cancel_futures=True)
        return [
            task.result()
            if task in done
            else MapRow.failed(entry.line, entry.url, _DEADLINE, caption=entry.caption)
            for entry, task in zip(entries, tasks, strict=True)
        ]


_DEADLINE = DownloadFailure(
    "deadline",
    "the invocation ran out of time before this URL finished; "
    "re-queue it with `pixsearch ingest --retry-failed`",
)


@dataclass
class _Run:
    downloader: Downloader
    fetcher: Fetcher
    host_slots: defaultdict[str, asyncio.Semaphore]
    slots: asyncio.Semaphore
    cpu: ThreadPoolExecutor
    io: ThreadPoolExecutor
    decodes: BytePool

    async def one(self, entry: UrlEntry) -> MapRow:
        row = await self._outcome(entry)
        if self.downloader.on_row is not None:
            self.downloader.on_row(row)
        return row

    async def _outcome(self, entry: UrlEntry) -> MapRow:
        try:
            return await self._one(entry)
        except DownloadFailure as failure:
            return MapRow.failed(entry.line, entry.url, failure, caption=entry.caption)
        except Exception as error:  # noqa: BLE001 - one URL's bug must not sink the list
            log.exception("unexpected error for %s", entry.url)
            failure = DownloadFailure("internal", f"{type(error).__name__}: {error}")
            return MapRow.failed(entry.line, entry.url, failure, caption=entry.caption)

    async def _one(self, entry: UrlEntry) -> MapRow:
        settings = self.downloader.settings
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            async with self.host_slots[_host(entry.url)]:
                await stack.enter_async_context(self.slots)
                fetched = await self.fetcher.fetch(entry.url)
            stack.callback(self.fetcher.release, fetched.reserved)
            decoding = await self.decodes.acquire(
                decoded_bytes(fetched.body) if settings.download_decode else 0
            )
            try:
                image = await loop.run_in_executor(
                    self.cpu,
                    lambda: _validated(fetched.body, fetched.content_type, settings),
                )
            finally:
                self.decodes.release(decoding)
            fetched_at = now_iso()
            origin = ImageOrigin(entry.url, self.downloader.list_name, fetched_at, entry.caption)
            key, status = await loop.run_in_executor(
                self.io, self.downloader.sink.store, image, origin
            )
        return MapRow(
            line=entry.line,
            url=entry.url,
            status=status,
            key=key,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            bytes=len(image.data),
            content_type=image.content_type,
            caption=entry.caption,
            fetched_at=fetched_at,
        )


def _validated(body: bytes, content_type: str, settings: Settings) -> images.ValidImage:
    try:
        return images.validate(
            body,
            max_pixels=settings.download_max_pixels,
            resize_max_side=settings.download_resize_max_side,
            content_type=content_type,
            decode=settings.download_decode,
        )
    except images.InvalidImage as invalid:
        raise DownloadFailure(invalid.reason, invalid.message) from None


def _host(url: str) -> str:
    """The key per-host limits count by: host and port, as aiohttp's connector pools them."""
    try:
        parsed = URL(url)
    except ValueError:
        return ""
    return f"{(parsed.host or '').lower()}:{parsed.port}"
