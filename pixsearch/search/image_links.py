"""Browser-loadable URLs for result images: presigned GETs of the object store.

A presigned URL works the same locally (moto, LocalStack, MinIO) and behind API
Gateway, where the browser loads the image straight from S3 instead of through
the function. Signing costs a fraction of a millisecond per key, so URLs are
reused for the first half of their lifetime.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from pixsearch.storage import ObjectStore


class ImageLinks:
    def __init__(self, store: ObjectStore, expires_s: int = 3600, capacity: int = 10_000) -> None:
        self.store = store
        self.expires_s = expires_s
        self.capacity = capacity
        self._signed: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def url(self, key: str) -> str:
        now = time.monotonic()
        with self._lock:
            cached = self._signed.get(key)
            if cached is not None and now - cached[0] < self.expires_s / 2:
                self._signed.move_to_end(key)
                return cached[1]
        signed = self.store.presigned_get_url(key, expires_s=self.expires_s)
        with self._lock:
            self._signed[key] = (now, signed)
            self._signed.move_to_end(key)
            while len(self._signed) > self.capacity:
                self._signed.popitem(last=False)
        return signed

    def __len__(self) -> int:
        return len(self._signed)
