"""The download function's memory budget, and the limits derived from it.

One setting, ``PIXSEARCH_DOWNLOAD_MEMORY_MB`` (on Lambda: the function's memory,
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``), bounds the worst case of everything the
download stage holds at once:

* bodies in flight: each reserves twice its size (streamed chunks, then their
  joined copy) from a shared byte pool before it is read, and gives it back once
  its image is stored; a body of unknown length reserves the cap and returns the
  rest once read. Connections stay at ``download_concurrency``: what the pool
  limits is how many *bodies* are in memory, so small images keep every
  connection busy while 20 MB ones wait their turn;
* decodes: one thread a CPU, each decode reserving its image's pixels (4 bytes
  a pixel, read from the header first) from a second pool that holds at least
  one image of the pixel cap: small images decode in parallel, huge ones alone;
* the URL list being parsed: a cap on its (decompressed) size, a fraction of its
  share because parsed rows take several times the bytes they came from.

What the download function's process holds before any of that (interpreter and
libraries: about 125 MiB measured, counted as :data:`BASELINE`) comes off the top,
and a fifth of the budget stays free as margin. The baseline is the function's,
not this process's: the local runtime runs every stage in one process, and the
model it loads for the embed stage is not the download stage's to account for.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from dataclasses import dataclass

from pixsearch import images
from pixsearch.config import Settings

MIB = 1024 * 1024
MARGIN = 0.2
DECODE_SHARE = 0.4
LIST_SHARE = 0.2
BYTES_PER_PIXEL = 4
ROW_OVERHEAD = 4
"""Parsed rows (Python objects) take about this many times the list bytes they came from."""
BASELINE = 160 * MIB
"""Resident memory of a download function before its first URL (measured ~125 MiB)."""


class BudgetTooSmall(ValueError):
    """The limits cannot fit the budget; the message names the settings to change."""


@dataclass(frozen=True)
class DownloadLimits:
    memory_bytes: int
    baseline_bytes: int
    body_pool_bytes: int
    decode_pool_bytes: int
    decode_threads: int
    list_max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings, baseline_bytes: int = BASELINE) -> DownloadLimits:
        memory = settings.download_memory_mb * MIB
        baseline = baseline_bytes
        available = int(memory * (1 - MARGIN)) - baseline
        per_body = 2 * settings.download_max_bytes
        per_decode = settings.download_max_pixels * BYTES_PER_PIXEL
        list_share = int(available * LIST_SHARE)
        decode_pool = max(per_decode, int(available * DECODE_SHARE))
        body_pool = available - list_share - decode_pool
        if body_pool < per_body:
            raise BudgetTooSmall(
                f"PIXSEARCH_DOWNLOAD_MEMORY_MB={settings.download_memory_mb} leaves "
                f"{max(0, body_pool) // MIB} MiB for image bodies after {baseline // MIB} MiB "
                f"in use, {decode_pool // MIB} MiB for decodes (one of "
                "PIXSEARCH_DOWNLOAD_MAX_PIXELS needs "
                f"{per_decode // MIB} MiB) and {list_share // MIB} MiB for the URL list; "
                f"one body of PIXSEARCH_DOWNLOAD_MAX_BYTES needs {per_body // MIB} MiB. "
                "Raise the memory or lower those caps"
            )
        return cls(
            memory_bytes=memory,
            baseline_bytes=baseline,
            body_pool_bytes=body_pool,
            decode_pool_bytes=decode_pool,
            decode_threads=max(2, os.cpu_count() or 2),
            list_max_bytes=min(settings.download_list_max_bytes, list_share // ROW_OVERHEAD),
        )


def decoded_bytes(data: bytes) -> int:
    """What decoding ``data`` takes at most, from its header alone."""
    return images.declared_pixels(data) * BYTES_PER_PIXEL


class BytePool:
    """An asyncio pool of bytes: ``acquire`` waits (first come, first served) until
    ``n`` bytes are free. A request larger than the pool takes the whole pool."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self.peak_used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int) -> int:
        """Reserve ``n`` bytes (at most the pool); returns what was reserved."""
        n = min(n, self.total)
        if not self._waiters and self.free >= n:
            self._take(n)
            return n
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(n)
            else:
                self._waiters.remove((n, granted))
                self._wake()
            raise
        return n

    def release(self, n: int) -> None:
        self.free += n
        self._wake()

    def _take(self, n: int) -> None:
        self.free -= n
        self.peak_used = max(self.peak_used, self.total - self.free)

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            n, granted = self._waiters.popleft()
            if not granted.done():
                self._take(n)
                granted.set_result(None)
