"""A data directory of older pixsearch releases, imported once into the object store.

Before the local stack kept its data in the emulator itself, ``pixsearch up``
mirrored the bucket of an in-memory moto server into the data directory:
``objects/<sha256 of the key>`` (one file per object), ``objects.json`` (key ->
ETag, content type, metadata) and ``pending-messages.json`` (queue -> the
bodies of the messages waiting at the last stop, queues named by stage,
``<stage>`` or ``<stage>-dlq``). :func:`import_mirror` puts those objects and
messages into the running stack, then moves the three entries into
``moto-mirror.imported/`` so the import runs once and nothing is deleted.

Objects go in while the bucket sends no notifications: every stage's output
is in the mirror too, so nothing needs doing again. An import cut short is
simply run again at the next start: objects already there are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixsearch import topology
from pixsearch.storage import ConflictError, ObjectStore

log = logging.getLogger(__name__)

ENTRIES = ("objects", "objects.json", "pending-messages.json")
IMPORTED = "moto-mirror.imported"


@dataclass(frozen=True)
class Imported:
    objects: int
    messages: int
    kept_in: Path


def found(data_dir: Path) -> bool:
    return (data_dir / "objects.json").is_file()


def silence_bucket(s3: Any, bucket: str) -> None:
    """No notifications while objects that have been processed already go in."""
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})


def import_objects(store: ObjectStore, data_dir: Path) -> int:
    """Put every mirrored object the bucket lacks; returns how many went in."""
    catalogue: dict[str, dict[str, Any]] = json.loads((data_dir / "objects.json").read_text())
    imported = 0
    for key, entry in catalogue.items():
        path = data_dir / "objects" / hashlib.sha256(key.encode()).hexdigest()
        if not path.is_file():
            log.warning("the moto mirror lost %s; skipping it", key)
            continue
        try:
            store.put_if_absent(
                key,
                path.read_bytes(),
                content_type=entry.get("content_type"),
                metadata=entry.get("metadata") or None,
            )
        except ConflictError:
            continue  # put by an import cut short
        imported += 1
    return imported


def import_messages(sqs: Any, queue_urls: dict[str, topology.QueueUrls], data_dir: Path) -> int:
    """Send the messages the mirror saved at its last stop to the queues they came from."""
    path = data_dir / "pending-messages.json"
    if not path.is_file():
        return 0
    by_name = {name: pair.queue for name, pair in queue_urls.items()}
    by_name.update({f"{name}-dlq": pair.dlq for name, pair in queue_urls.items()})
    sent = 0
    for name, bodies in json.loads(path.read_text()).items():
        if name not in by_name:
            log.warning("%d saved message(s) for unknown queue %s left out", len(bodies), name)
            continue
        for body in bodies:
            sqs.send_message(QueueUrl=by_name[name], MessageBody=body)
            sent += 1
    return sent


def set_aside(data_dir: Path) -> Path:
    """Move the mirror out of the way (kept, not deleted) so it is imported once."""
    target = data_dir / IMPORTED
    target.mkdir(exist_ok=True)
    for name in ENTRIES:
        if (data_dir / name).exists():
            (data_dir / name).rename(target / name)
    return target
