"""Keeping the local stack's data across restarts of the in-memory moto server.

The bucket is mirrored into ``<data_dir>/objects`` (one file per object, named by
the SHA-256 of its key, plus an ``objects.json`` catalogue of keys, ETags,
content types and metadata). A sync copies only objects whose ETag changed, so
it can run every few seconds. Messages still waiting in the queues at shutdown
are saved too and sent again at start, so work in progress is not lost.

On start the mirror is restored *before* the bucket notifications are attached:
restored objects do not trigger the stages again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pixsearch.events import TEST_EVENT
from pixsearch.storage import ObjectStore

log = logging.getLogger(__name__)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class BucketMirror:
    """A local copy of one bucket, kept in step by :meth:`sync` and put back by :meth:`restore`."""

    def __init__(self, store: ObjectStore, directory: Path) -> None:
        self.store = store
        self.objects_dir = directory / "objects"
        self.catalogue_path = directory / "objects.json"
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.catalogue: dict[str, dict[str, Any]] = (
            json.loads(self.catalogue_path.read_text()) if self.catalogue_path.exists() else {}
        )
        self._lock = threading.Lock()

    def _file(self, key: str) -> Path:
        return self.objects_dir / hashlib.sha256(key.encode()).hexdigest()

    def sync(self) -> int:
        """Copy new and changed objects, forget removed ones; returns how many changed."""
        with self._lock:
            changed = 0
            live = {info.key: info for info in self.store.list()}
            for key in set(self.catalogue) - set(live):
                self._file(key).unlink(missing_ok=True)
                del self.catalogue[key]
                changed += 1
            for key, info in live.items():
                if self.catalogue.get(key, {}).get("etag") == info.etag:
                    continue
                try:
                    body, full = self.store.get_with_info(key)
                except KeyError:
                    continue  # removed since the listing
                _write_atomically(self._file(key), body)
                self.catalogue[key] = {
                    "etag": full.etag,
                    "content_type": full.content_type,
                    "metadata": full.metadata,
                }
                changed += 1
            if changed:
                _write_atomically(self.catalogue_path, json.dumps(self.catalogue).encode())
            return changed

    def restore(self) -> int:
        """Put every mirrored object back into the (empty) bucket; returns the count."""
        restored = 0
        for key, entry in self.catalogue.items():
            path = self._file(key)
            if not path.exists():
                log.warning("mirror lost %s; skipping it", key)
                continue
            if self.store.head(key) is None:
                self.store.put(
                    key,
                    path.read_bytes(),
                    content_type=entry.get("content_type"),
                    metadata=entry.get("metadata") or None,
                )
                restored += 1
        return restored


def save_pending_messages(sqs: Any, queue_urls: dict[str, str], path: Path) -> int:
    """Receive every visible message of the named queues and write their bodies to ``path``."""
    saved: dict[str, list[str]] = {}
    for name, url in queue_urls.items():
        bodies: list[str] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
            ).get("Messages", [])
            if not batch:
                break
            bodies.extend(m["Body"] for m in batch if TEST_EVENT not in m["Body"])
        saved[name] = bodies
    _write_atomically(path, json.dumps(saved).encode())
    return sum(len(bodies) for bodies in saved.values())


def restore_pending_messages(sqs: Any, queue_urls: dict[str, str], path: Path) -> int:
    """Send the bodies saved by :func:`save_pending_messages` again, then forget them."""
    if not path.exists():
        return 0
    saved: dict[str, list[str]] = json.loads(path.read_text())
    count = 0
    for name, bodies in saved.items():
        if name not in queue_urls:
            log.warning("saved messages for unknown queue %s dropped", name)
            continue
        for body in bodies:
            sqs.send_message(QueueUrl=queue_urls[name], MessageBody=body)
            count += 1
    path.unlink()
    return count
