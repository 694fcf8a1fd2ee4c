"""MiniStack that restarts fast and loses nothing to a crash (ministack == ``VERSION``).

Run as ``python -m pixsearch.runtime.ministack_fixes`` with the environment
of :mod:`pixsearch.runtime.ministack_server`, it imports MiniStack's S3
without the start-up scan of every object's sidecar and installs:

- the object metadata journal of :mod:`pixsearch.runtime.ministack_object_journal`
  around MiniStack's writes and removals of object files, recovered at start
  (a snapshot plus the changes since, no scan), with ``s3.json`` written after
  every change of bucket configuration;
- the queue journal of :mod:`pixsearch.runtime.ministack_queue_journal`;
- S3 -> SQS notifications delivered by the request that writes the object
  (MiniStack starts a thread for each one after answering), once the object
  is journaled: :func:`journal_requests`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pixsearch.runtime import ministack_ranges, patching
from pixsearch.runtime.ministack_object_journal import ObjectJournal
from pixsearch.runtime.ministack_queue_journal import CONFIGURATION_ACTIONS, QueueJournal

VERSION = "1.5.33"

# pixsearch.runtime.patching.fingerprint() of each MiniStack function the fix relies on.
FINGERPRINTS = {
    "ministack.services.s3:_load_persisted_data": "e5249031f46d76f8",
    "ministack.services.s3:_load_persisted_bucket": "7e84b6f2596ed33b",
    "ministack.services.s3:_persist_object": "cb32b6ae8706bef8",
    "ministack.services.s3:_delete_persisted_object": "8baff70b77c648f9",
    "ministack.services.s3:_object_disk_path": "0a7ed55714d95566",
    "ministack.services.s3:_object_meta_from_record": "e255160d5f19a9f6",
    "ministack.services.s3:_parse_bucket_key": "06e19cc5df12255c",
    "ministack.services.s3:_in_account": "48f6799e81a65acd",
    "ministack.services.s3:handle_request": "0856144f19e733b4",
    "ministack.services.s3:get_state": "999bd282f36ce23f",
    "ministack.services.s3:_restore_state": "1ee11336adcf4299",
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

READS = frozenset({"GET", "HEAD", "OPTIONS"})

# The notifications of the S3 request being handled, delivered once it is done.
_pending_events: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "pixsearch_pending_events", default=None
)


def mismatches() -> list[str]:
    return patching.mismatches(FINGERPRINTS)


def apply() -> None:
    """Import MiniStack's S3 without its start-up scan, recover, and install the journals."""
    from importlib.metadata import version

    persist = os.environ.get("S3_PERSIST") == "1"
    os.environ["S3_PERSIST"] = "0"  # read once at import: skips the scan at import time
    from ministack import app
    from ministack.core import persistence
    from ministack.services import s3

    changed = mismatches()
    if version("ministack") != VERSION or changed:
        raise RuntimeError(
            f"pixsearch's MiniStack fix is written for ministack {VERSION}, found "
            f"{version('ministack')} (changed: {', '.join(changed) or 'none'}); install "
            f"ministack=={VERSION} or set PIXSEARCH_LOCAL_BACKEND=moto"
        )
    os.environ["S3_PERSIST"] = "1" if persist else "0"
    ministack_ranges.apply(s3)
    state_dir = Path(persistence.STATE_DIR)
    queues = install_queue_journal(app) if persistence.PERSIST_STATE else None
    objects = None
    if persist:
        s3.S3_PERSIST = True
        objects = ObjectJournal(s3, persistence, state_dir)
        started = time.monotonic()
        how = objects.recover()
        count = sum(len(b.get("objects", {})) for b in s3._buckets._data.values())
        log.warning("restored %d objects by %s in %.2fs", count, how, time.monotonic() - started)
        install_object_journal(s3, objects)
    journal_requests(s3, objects if persistence.PERSIST_STATE else None)
    save_all = app.save_all

    def save_all_and_compact(*args: Any, **kwargs: Any) -> Any:
        result = save_all(*args, **kwargs)
        for journal in (objects, queues):
            if journal is not None:
                journal.compact()
        return result

    app.save_all = save_all_and_compact


def install_object_journal(s3: Any, journal: ObjectJournal) -> None:
    """Journal every write and removal of an object's files around MiniStack's own."""
    persist_object, delete_persisted_object = s3._persist_object, s3._delete_persisted_object

    def persist_journaled(bucket: str, key: str, obj: Any) -> None:
        journal.writing(bucket, key)
        persist_object(bucket, key, obj)
        journal.written(bucket, key, obj)

    def delete_journaled(bucket: str, key: str) -> None:
        journal.writing(bucket, key)
        delete_persisted_object(bucket, key)
        journal.removed(bucket, key)

    s3._persist_object = persist_journaled
    s3._delete_persisted_object = delete_journaled


def journal_requests(s3: Any, objects: ObjectJournal | None) -> None:
    """Each S3 request: notifications after its writes, ``s3.json`` after a bucket change.

    MiniStack fires a notification before writing the object's files; a
    crash between the two would leave a queued message for an object that
    was never stored. Held until the request is done, each notification
    follows its object into the journal and precedes the answer.
    """
    handle_request = s3.handle_request

    async def handle_then_notify(
        method: str, path: str, headers: dict, *args: Any, **kwargs: Any
    ) -> Any:
        bucket, key = s3._parse_bucket_key(path, headers)
        watched = objects is not None and bool(bucket) and not key and method not in READS
        before = objects.configuration() if watched else b""
        token = _pending_events.set([])
        try:
            result = await handle_request(method, path, headers, *args, **kwargs)
            if objects is not None and method not in READS:
                objects.watching()  # tags, ACLs or versions set now: the next start scans
            if watched:
                after = objects.configuration()
                if after != before:
                    objects.configured(after)
            pending = _pending_events.get() or []
        finally:
            _pending_events.reset(token)
        for account, event in pending:
            with s3._in_account(account):
                s3._fire_s3_event(**event)
        return result

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
        event = {
            "bucket_name": bucket_name,
            "key": key,
            "event_name": event_name,
            "size": size,
            "etag": etag,
            "deletion_type": deletion_type,
            "version_id": version_id,
            "sequencer": s3._next_event_sequencer(event_name),
            "object_extra": object_extra,
            "record_extra": record_extra,
        }
        pending = _pending_events.get()
        if pending is None:
            s3._fire_s3_event(**event)
        else:
            pending.append((s3.get_account_id(), event))

    s3._fire_s3_event_async = fire
    s3.handle_request = handle_then_notify


def install_queue_journal(app: Any) -> QueueJournal:
    """Journal queue changes, replay the journal at start, compact after configuration changes."""
    from ministack.core import persistence
    from ministack.services import sqs

    journal = QueueJournal(sqs, persistence, Path(persistence.STATE_DIR))
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
