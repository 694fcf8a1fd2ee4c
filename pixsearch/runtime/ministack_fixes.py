"""MiniStack with a fast restart and queues that survive a crash (ministack == ``VERSION``).

With ``S3_PERSIST=1`` MiniStack keeps each object as a file plus a
``.meta.json`` sidecar and, when its S3 module is imported, walks the whole
data directory and reads every sidecar to rebuild the in-memory metadata:
about 0.3-1.5 ms per object here, so minutes at 100,000 objects.

The fix: at a clean shutdown (SIGTERM, when MiniStack saves its other state)
the metadata of every bucket is written to one JSON snapshot beside the state
files; at start the snapshot is loaded in one read and removed, so it can never
outlive a crash. Without a snapshot (first start, or after a crash) MiniStack's
own full scan runs, so the data on disk stays the truth. Buckets using object
versions, tags, ACLs or annotations (pixsearch uses none) are never
snapshotted.

Queue messages are kept across a crash by the journal of
:mod:`pixsearch.runtime.ministack_journal`, which needs S3 -> SQS notifications
delivered by the request that writes the object (MiniStack starts a thread
for each one after answering): :func:`deliver_notifications_inline`.

Run as ``python -m pixsearch.runtime.ministack_fixes`` with the environment
of :mod:`pixsearch.runtime.ministack_server`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pixsearch.runtime import ministack_ranges, patching
from pixsearch.runtime.ministack_journal import CONFIGURATION_ACTIONS, Journal

VERSION = "1.5.33"
SNAPSHOT = "pixsearch-s3-objects.json"

# pixsearch.runtime.patching.fingerprint() of each MiniStack function the fix relies on.
FINGERPRINTS = {
    "ministack.services.s3:_load_persisted_data": "e5249031f46d76f8",
    "ministack.services.s3:_load_persisted_bucket": "7e84b6f2596ed33b",
    "ministack.services.s3:_persist_object": "cb32b6ae8706bef8",
    "ministack.services.s3:get_state": "999bd282f36ce23f",
    "ministack.app:_handle_lifespan": "0daf4cf135cf3cb4",
    "ministack.app:_load_persisted_state": "03de3b870e8f811f",
    "ministack.services.s3:_fire_s3_event_async": "d42619f0eb8691d5",
    "ministack.services.s3:_deliver_event_to_sqs": "268b46f4a97c2dfd",
    "ministack.services.sqs:_dispatch": "6a429fdb61ebdc5a",
    "ministack.services.sqs:get_state": "759c348b6e841407",
    "ministack.services.sqs:_restore_state": "6ad905ae1eeaa916",
    "ministack.services.sqs:_act_create_queue": "5f6e8f364cd9e78a",
    "ministack.services.sqs:_act_send_message": "3abd766508c885c6",
    "ministack.services.sqs:_act_delete_message": "8d700665e3d6d9b3",
    "ministack.services.sqs:_act_delete_message_batch": "877517c32f0fe636",
    "ministack.services.sqs:_act_purge_queue": "34196ea56d71cdb6",
    "ministack.services.sqs:_dlq_sweep": "6a77691e16715a0d",
    "ministack.services.sqs:_expire_retained": "c0da3361632bea27",
    "ministack.core.persistence:save_state": "58a9551109738f64",
    "ministack.core.persistence:load_state": "1796603c91a178d6",
}

log = logging.getLogger("pixsearch.ministack")


def mismatches() -> list[str]:
    return patching.mismatches(FINGERPRINTS)


def snapshot_path() -> Path:
    return Path(os.environ.get("STATE_DIR", "/tmp/ministack-state")) / SNAPSHOT


def save_snapshot(s3: Any, path: Path) -> None:
    """Every bucket's object metadata in one file, unless something would be left out."""
    side_tables = (s3._object_versions, s3._object_tags, s3._object_acl, s3._object_annotations)
    if any(table._data for table in side_tables):
        log.info("objects carry versions, tags or ACLs: no snapshot, next start scans")
        return
    buckets = []
    for (account, name), bucket in s3._buckets._data.items():
        objects = bucket.get("objects", {})
        if any(record.get("body") is not None for record in objects.values()):
            log.info("bucket %s holds unpersisted bodies: no snapshot", name)
            return
        buckets.append({"account": account, "bucket": name, "objects": objects})
    try:
        data = json.dumps({"version": VERSION, "buckets": buckets})
    except (TypeError, ValueError):
        log.warning("object metadata is not JSON: no snapshot, next start scans", exc_info=True)
        return
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(data)
    os.replace(temporary, path)


def load_snapshot(s3: Any, path: Path) -> bool:
    """Restore the metadata saved at the last clean stop; False if there is none to trust."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    finally:
        path.unlink(missing_ok=True)  # a crash from here on must not find a stale snapshot
    if saved.get("version") != VERSION:
        return False
    for entry in saved["buckets"]:
        scoped = (entry["account"], entry["bucket"])
        bucket = s3._buckets._data.setdefault(
            scoped, {"created": s3.now_iso(), "objects": {}, "region": None}
        )
        bucket["objects"] = entry["objects"]
    return True


def apply() -> None:
    """Import MiniStack's S3 without its start-up scan, restore, and hook the snapshot."""
    from importlib.metadata import version

    persist = os.environ.get("S3_PERSIST") == "1"
    os.environ["S3_PERSIST"] = "0"  # read once at import: skips the scan at import time
    from ministack import app
    from ministack.services import s3

    changed = mismatches()
    if version("ministack") != VERSION or changed:
        raise RuntimeError(
            f"pixsearch's MiniStack fix is written for ministack {VERSION}, found "
            f"{version('ministack')} (changed: {', '.join(changed) or 'none'}); install "
            f"ministack=={VERSION} or set PIXSEARCH_LOCAL_BACKEND=moto"
        )
    os.environ["S3_PERSIST"] = "1" if persist else "0"
    deliver_notifications_inline(s3)
    ministack_ranges.apply(s3)
    journal = install_journal(app) if os.environ.get("PERSIST_STATE") == "1" else None
    if not persist:
        return
    s3.S3_PERSIST = True
    path = snapshot_path()
    started = time.monotonic()
    if load_snapshot(s3, path):
        how = "snapshot"
    else:
        s3._load_persisted_data()
        how = "full scan"
    count = sum(len(b.get("objects", {})) for b in s3._buckets._data.values())
    log.warning("restored %d objects by %s in %.2fs", count, how, time.monotonic() - started)
    save_all = app.save_all

    def save_all_and_snapshot(*args: Any, **kwargs: Any) -> Any:
        result = save_all(*args, **kwargs)
        save_snapshot(s3, path)
        if journal is not None:
            journal.compact()
        return result

    app.save_all = save_all_and_snapshot


def deliver_notifications_inline(s3: Any) -> None:
    """S3 -> SQS notifications queued before the write is answered, not by a thread after it."""

    def fire(
        bucket_name: str,
        key: str,
        event_name: str,
        size: int = 0,
        etag: str = "",
        deletion_type: str | None = None,
        version_id: str | None = None,
        object_extra: dict | None = None,
        record_extra: dict | None = None,
    ) -> None:
        if bucket_name not in s3._bucket_notifications:
            return
        s3._fire_s3_event(
            bucket_name,
            key,
            event_name,
            size,
            etag,
            deletion_type,
            version_id=version_id,
            sequencer=s3._next_event_sequencer(event_name),
            object_extra=object_extra,
            record_extra=record_extra,
        )

    s3._fire_s3_event_async = fire


def install_journal(app: Any) -> Journal:
    """Journal queue changes, replay the journal at start, compact after configuration changes."""
    from ministack.core import persistence
    from ministack.services import sqs

    journal = Journal(sqs, persistence, Path(persistence.STATE_DIR))
    load_persisted_state = app._load_persisted_state

    def load_then_replay() -> None:
        load_persisted_state()
        journal.recover()

    app._load_persisted_state = load_then_replay
    for action in CONFIGURATION_ACTIONS:
        sqs._HANDLERS[action] = journal.compacting_after(sqs._HANDLERS[action])
    return journal


def stop_with_parent(poll_s: float = 0.5) -> None:
    """Stop cleanly (state saved) once the process that launched this one is gone.

    A ``kill -9`` of ``pixsearch up`` would otherwise leave MiniStack running,
    holding the port and the data directory the next ``pixsearch up`` needs.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        log.warning("the process that started MiniStack is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="pixsearch-parent-watch", daemon=True).start()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    apply()
    stop_with_parent()
    from ministack.app import main as ministack_main

    sys.argv = [sys.argv[0]]
    ministack_main()


if __name__ == "__main__":
    main()
