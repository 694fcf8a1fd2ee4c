"""Images the download stage just stored, handed to the embed stage of the same process.

The local runtime runs both stages in one process, and the embed stage's GET of
an image the download stage PUT a moment before was one of the two object
store calls every image paid (about 4 ms of CPU on the two sides together).
While the local runtime has it on (:func:`enabled`), the download stage keeps
what it stored here and the embed stage takes it from here, falling back to the
bucket for anything absent.

Only ``images/`` keys are kept, and they are content addressed (the key is the
SHA-256 of the stored bytes, checked on the way in), so an entry can be missing
but never stale. The cache holds at most ``max_bytes`` of image data: a new
image that does not fit is not kept (images are embedded in about the order
they were stored, so the oldest entries are the next ones needed), except that
entries older than :data:`STALE_AFTER_S`, which no embed run is coming for,
make room. An entry is taken once; a redelivered batch reads the bucket.

Off by default, and never turned on in a deployed function: there the stages
are separate processes and the embed stage reads the bucket.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from pixsearch import layout
from pixsearch.images import ValidImage
from pixsearch.storage import ObjectInfo, ObjectStore

STALE_AFTER_S = 600.0


@dataclass(frozen=True)
class _Entry:
    data: bytes
    info: ObjectInfo
    stored_at: float


class RecentImages:
    """A thread-safe, byte-bounded map of (bucket, key) -> the image's bytes and info."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, bucket: str, info: ObjectInfo, data: bytes) -> bool:
        """Keep ``data`` under ``info.key`` if it fits; whether it was kept."""
        size = len(data)
        with self._lock:
            if (bucket, info.key) in self._entries:
                return True
            now = self._clock()
            while self.nbytes + size > self.max_bytes and self._entries:
                oldest_key, oldest = next(iter(self._entries.items()))
                if now - oldest.stored_at < STALE_AFTER_S:
                    break
                self._drop(oldest_key)
            if self.nbytes + size > self.max_bytes:
                return False
            self._entries[(bucket, info.key)] = _Entry(data, info, now)
            self.nbytes += size
            return True

    def take(self, bucket: str, key: str) -> tuple[bytes, ObjectInfo] | None:
        """The image's bytes and info, removed from the cache; None if absent."""
        with self._lock:
            entry = self._drop((bucket, key))
        return None if entry is None else (entry.data, entry.info)

    def _drop(self, cache_key: tuple[str, str]) -> _Entry | None:
        entry = self._entries.pop(cache_key, None)
        if entry is not None:
            self.nbytes -= len(entry.data)
        return entry


_active: RecentImages | None = None


@contextmanager
def enabled(max_bytes: int) -> Iterator[RecentImages | None]:
    """Keep stored images for the embed stage of this process while the block runs
    (``max_bytes`` 0: not at all). An enclosing block's cache stays in use."""
    global _active
    if _active is not None or max_bytes <= 0:
        yield _active
        return
    _active = RecentImages(max_bytes)
    try:
        yield _active
    finally:
        _active = None


def remember(bucket: str, key: str, image: ValidImage, etag: str, metadata: dict[str, str]) -> None:
    """The download stage stored ``image`` under ``key``: keep it for the embed stage.

    Its Last-Modified is this process's clock to the second (an emulator on the
    same machine stamps the same second, or the next); it only tells uploads of
    the same key apart in a shard's id.
    """
    cache = _active
    if cache is None:
        return
    if key != layout.image_key(image.sha256, image.ext):
        raise ValueError(f"{key} is not the content address of the image stored under it")
    info = ObjectInfo(
        key=key,
        etag=etag,
        size=len(image.data),
        content_type=image.content_type,
        metadata=dict(metadata),
        last_modified=datetime.now(UTC).replace(microsecond=0),
    )
    cache.add(bucket, info, image.data)


def read(store: ObjectStore, key: str) -> tuple[bytes, ObjectInfo]:
    """An image's bytes and info: from the cache when this process just stored it,
    else from the bucket (:class:`~pixsearch.storage.ObjectNotFound` if gone)."""
    cache = _active
    found = None if cache is None else cache.take(store.bucket, key)
    return found if found is not None else store.get_with_info(key)
