"""Object metadata that survives a crash of MiniStack without reading every object's sidecar.

With ``S3_PERSIST=1`` MiniStack keeps each object as a file plus a
``.meta.json`` sidecar and rebuilds its in-memory metadata at start by
walking the data directory and reading every sidecar: about 0.1 ms per
object here, so 7-15 s at 100,000 objects. pixsearch keeps the metadata as
a :class:`~pixsearch.runtime.ministack_journal.Journal` instead:

- The compacted state is one JSON *snapshot* of every bucket's object
  records, read in one go at start.
- Each write of an object's files (put, copy, multipart completion) and each
  removal is journaled around MiniStack's own: an *intent* (bucket, key)
  before the files change, the record (or the deletion) after. An
  acknowledged write has both; the intent alone marks the one write the
  crash interrupted.
- At start the snapshot is loaded and the journal replayed over it. A key
  whose intent has no outcome is *settled* from its files, the only ones
  read: a body that matches its sidecar (size, and MD5 for a single-part
  ETag) is kept as written, anything else (a body without sidecar, a
  sidecar without body, a body replaced but its sidecar not yet) was never
  acknowledged and is removed. The settlement is journaled like any change.
- The journal is compacted (snapshot written with fsync and an atomic
  rename, then the journal emptied) at a clean stop, after a change of
  bucket configuration, and once it outgrows the snapshot, so replaying it
  never costs more than reading the snapshot again.

Bucket configuration (buckets, notifications, policies) is MiniStack's
``s3.json``, written by MiniStack at a clean stop and by pixsearch after
every change of it (:meth:`ObjectJournal.configured`): the snapshot first,
then ``s3.json``, so a crash between the two leaves the change unmade, as
it was unacknowledged. The snapshot holds buckets with objects only; an empty
bucket exists through ``s3.json`` alone.

Object versions, tags, ACLs and annotations (pixsearch uses none) are not
journaled: once any exists, the snapshot is removed and the next start takes
MiniStack's full scan, whose data on disk is the truth.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pixsearch.runtime.ministack_journal import Journal, service_state, write_durably

log = logging.getLogger("pixsearch.ministack")

SNAPSHOT = "pixsearch-s3-objects.json"
JOURNAL = "pixsearch-s3-journal.jsonl"

Scoped = tuple[str, str]  # MiniStack's scoped bucket key: (account, bucket)


class ObjectJournal(Journal):
    """The object writes and removals of every bucket since the last snapshot."""

    growth = 1.0

    def __init__(self, s3: Any, persistence: Any, state_dir: Path) -> None:
        super().__init__(state_dir / JOURNAL, persistence)
        self.s3 = s3
        self.snapshot_path = state_dir / SNAPSHOT
        self.s3_state_path = state_dir / "s3.json"
        self.active = True
        self.in_doubt: set[tuple[Scoped, str]] = set()  # intents without an outcome yet

    def scoped(self, bucket: str) -> Scoped:
        return (self.s3.get_account_id(), bucket)

    def writing(self, bucket: str, key: str) -> None:
        """The files of ``key`` are about to change."""
        if self.watching():
            scoped = self.scoped(bucket)
            self.in_doubt.add((scoped, key))
            self.append({"b": scoped, "k": key, "w": 1})

    def written(self, bucket: str, key: str, record: Any) -> None:
        """``record``'s files are written; a body still in memory was not: left to settle."""
        if self.watching() and isinstance(record, dict) and record.get("body") is None:
            scoped = self.scoped(bucket)
            self.in_doubt.discard((scoped, key))
            self.append({"b": scoped, "k": key, "o": record})

    def removed(self, bucket: str, key: str) -> None:
        if self.watching():
            scoped = self.scoped(bucket)
            self.in_doubt.discard((scoped, key))
            self.append({"b": scoped, "k": key, "d": 1})

    def untracked(self) -> bool:
        """Whether any object carries state the journal does not follow."""
        s3 = self.s3
        tables = (s3._object_versions, s3._object_tags, s3._object_acl, s3._object_annotations)
        return any(table._data for table in tables)

    def watching(self) -> bool:
        if self.active and self.untracked():
            self.active = False
            self.snapshot_path.unlink(missing_ok=True)
            self.emptied(0)
            log.warning("objects carry versions, tags or ACLs: no snapshot, next start scans")
        return self.active

    def recover(self) -> str:
        """Load the snapshot and replay the journal, or scan; say which."""
        saved = self.read_snapshot()
        if saved is None:
            self.s3._load_persisted_data()
            if self.watching():
                self.compact()
            return "full scan"
        self.compact_at = max(self.compact_at, int(self.growth * saved))
        replayed, in_doubt = self.replay()
        for scoped, key in in_doubt:
            self.settle(scoped, key)
        if self.size > self.compact_at:
            self.compact()
        if not (replayed or in_doubt or self.torn):
            return "snapshot"
        return (
            f"snapshot + journal ({replayed} change(s) replayed, {len(in_doubt)} settled "
            f"from their files, {self.torn} torn)"
        )

    def read_snapshot(self) -> int | None:
        """Restore the snapshot's objects; its size in bytes, or None if there is none to trust."""
        try:
            data = self.snapshot_path.read_bytes()
            saved = json.loads(data, object_hook=self.persistence._json_object_hook)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("unreadable object snapshot: scanning the files", exc_info=True)
            return None
        if saved.get("ministack") != version("ministack"):
            return None
        for entry in saved["buckets"]:
            self.bucket((entry["account"], entry["bucket"]))["objects"] = entry["objects"]
        return len(data)

    def bucket(self, scoped: Scoped) -> dict[str, Any]:
        return self.s3._buckets._data.setdefault(
            scoped, {"created": self.s3.now_iso(), "objects": {}, "region": None}
        )

    def replay(self) -> tuple[int, list[tuple[Scoped, str]]]:
        """Apply the journal; the count of changes and the keys left in doubt."""
        buckets = self.s3._buckets._data
        in_doubt: dict[tuple[Scoped, str], None] = {}
        replayed = 0
        for entry in self.entries():
            scoped, key = (entry["b"][0], entry["b"][1]), entry["k"]
            if "w" in entry:
                in_doubt[(scoped, key)] = None
                continue
            in_doubt.pop((scoped, key), None)
            replayed += 1
            if "o" in entry:
                self.bucket(scoped)["objects"][key] = entry["o"]
            elif scoped in buckets:
                buckets[scoped]["objects"].pop(key, None)
        return replayed, list(in_doubt)

    def settle(self, scoped: Scoped, key: str) -> None:
        """Keep ``key`` as its files say if they agree, remove them if not; journal which."""
        account, bucket = scoped
        found = self.s3._object_disk_path(bucket, key, account)
        record = self.record_from_files(Path(found), key) if found else None
        if found:
            for leftover in (found, found + ".meta.json"):
                Path(leftover + ".tmp").unlink(missing_ok=True)
                if record is None:
                    Path(leftover).unlink(missing_ok=True)
        if record is None:
            self.s3._buckets._data.get(scoped, {}).get("objects", {}).pop(key, None)
            self.append({"b": scoped, "k": key, "d": 1})
        else:
            self.bucket(scoped)["objects"][key] = record
            self.append({"b": scoped, "k": key, "o": record})
        log.warning("settled %s/%s from its files: %s", bucket, key, "kept" if record else "gone")

    @staticmethod
    def record_from_files(path: Path, key: str) -> dict[str, Any] | None:
        """The object record of a body and sidecar that agree, else None."""
        try:
            meta = json.loads(path.with_name(path.name + ".meta.json").read_bytes())
            body = path.read_bytes()
        except (OSError, ValueError):
            return None
        etag = str(meta.get("etag", "")).strip('"')
        same_body = "-" in etag or etag == hashlib.md5(body).hexdigest()  # noqa: S324 - S3's ETag
        if meta.get("key") != key or meta.get("size") != len(body) or not same_body:
            return None
        record = {name: value for name, value in meta.items() if name != "key"}
        if record.get("version_id") is None:
            record.pop("version_id", None)
        return {**record, "body": None}

    def snapshot(self) -> bytes:
        buckets = []
        for (account, name), bucket in self.s3._buckets._data.items():
            objects = {
                key: record
                for key, record in bucket.get("objects", {}).items()
                if record.get("body") is None  # a body in memory never reached its file
            }
            if objects:
                buckets.append({"account": account, "bucket": name, "objects": objects})
        saved = {"ministack": version("ministack"), "buckets": buckets}
        return json.dumps(saved, default=self.persistence._json_default).encode()

    def compact(self) -> None:
        """Write the snapshot (fsync, atomic rename), then start the journal afresh.

        A write under way (its intent journaled, its outcome not yet, as when
        the intent itself brings the journal to its bound) keeps its intent.
        """
        if self.active:
            data = self.snapshot()
            write_durably(self.snapshot_path, data)
            self.emptied(len(data))
            for scoped, key in self.in_doubt:  # still to settle should the process die
                self.append({"b": scoped, "k": key, "w": 1})

    def configuration(self) -> bytes:
        """MiniStack's bucket state (``s3.json``), objects left out, as it would be written."""
        return service_state(self.persistence, "s3", self.s3.get_state())

    def configured(self, state: bytes) -> None:
        """Bucket configuration changed to ``state``: snapshot first, then ``s3.json``."""
        self.compact()
        write_durably(self.s3_state_path, state)
