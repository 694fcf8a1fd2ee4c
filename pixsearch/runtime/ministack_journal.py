"""Queue messages that survive a crash of MiniStack: a write-through journal of SQS changes.

MiniStack (``PERSIST_STATE=1``) writes its SQS state, queues and their
messages, only at a clean stop: after a ``kill -9`` every message sent since
the last start is gone, and with it the work an acknowledged object put had
queued. The fix, installed by :mod:`pixsearch.runtime.ministack_fixes`:

- Every message added to a queue and every removal (delete, dead-lettering,
  purge, expiry) is appended to a journal as one JSON line, with ``os.write``
  on an ``O_APPEND`` descriptor, before the request is answered. Written to
  the operating system, a line survives the death of the process (not a power
  cut: MiniStack does not fsync its object files either).
- S3 -> SQS notifications are delivered by the request that writes the
  object, not by a thread started after it was answered: an acknowledged put
  has its message in the journal, and no thread races the event loop over a
  queue's message list.
- At start, after MiniStack has read its ``sqs.json``, the journal is
  replayed over it (adds are keyed by message id and removals are idempotent,
  so replaying twice changes nothing), then *compacted*: the whole SQS state
  is written with fsync and an atomic rename, and the journal emptied.
  Compaction also follows every change of queue configuration (create,
  delete, attributes, tags, permissions), a clean stop, and a journal
  grown past twice the last state (at least ``MIN_COMPACT_BYTES``), so the
  journal to replay stays small.

Receives are not journaled: after a crash a message that was in flight is
visible again with the receive count of the last compaction. Delivery is at
least once and every stage is idempotent, so that costs a redelivery at most.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("pixsearch.ministack")

JOURNAL = "pixsearch-sqs-journal.jsonl"
MIN_COMPACT_BYTES = 16 << 20

# Actions that may change a queue's configuration: compact after those that do.
CONFIGURATION_ACTIONS = (
    "CreateQueue",
    "DeleteQueue",
    "SetQueueAttributes",
    "AddPermission",
    "RemovePermission",
    "TagQueue",
    "UntagQueue",
)

QueueKey = tuple[str, ...]  # MiniStack's scoped key: (account, region, queue url)


class Journal:
    """The append-only log of message changes since the last compaction."""

    def __init__(self, sqs: Any, persistence: Any, state_dir: Path) -> None:
        self.sqs = sqs
        self.persistence = persistence
        self.state_path = state_dir / "sqs.json"
        self.path = state_dir / JOURNAL
        state_dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self._fd).st_size
        self.compact_at = MIN_COMPACT_BYTES

    def added(self, key: QueueKey, message: dict[str, Any]) -> None:
        self._append({"q": key, "add": message})

    def removed(self, key: QueueKey, message_ids: list[str]) -> None:
        if message_ids:
            self._append({"q": key, "del": message_ids})

    def _append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, default=self.persistence._json_default) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view) :]
        self.size += len(line)
        if self.size > self.compact_at:
            try:
                self.compact()
            except OSError:  # the change itself is journaled: keep serving, try again later
                log.warning("could not compact the queue journal", exc_info=True)
                self.compact_at = 2 * self.size

    def recover(self) -> int:
        """Replay the journal over the state MiniStack loaded, journal every queue, compact."""
        queues = self.sqs._queues._data
        by_queue = {key: {m["id"]: m for m in q["messages"]} for key, q in queues.items()}
        replayed = torn = 0
        with open(self.path, "rb") as lines:
            for line in lines:
                try:
                    entry = json.loads(line, object_hook=self.persistence._json_object_hook)
                except ValueError:
                    torn += 1  # the line being written when the process died
                    continue
                messages = by_queue.get(tuple(entry["q"]))
                if messages is None:
                    continue  # a queue deleted since
                replayed += 1
                if "add" in entry:
                    messages.setdefault(entry["add"]["id"], entry["add"])
                for message_id in entry.get("del", ()):
                    messages.pop(message_id, None)
        for key, messages in by_queue.items():
            queues[key]["messages"] = list(messages.values())
        self.watch_queues()
        self.compact()
        if replayed or torn:
            log.warning("replayed %d queue change(s) after a crash (%d torn)", replayed, torn)
        return replayed

    def watch_queues(self) -> None:
        """Journal the message changes of every queue not journaled yet."""
        queues = self.sqs._queues._data
        for key, queue in list(queues.items()):
            if not isinstance(queue, JournaledQueue):
                queues[key] = JournaledQueue(queue, key=tuple(key), journal=self)

    def compact(self) -> None:
        """Write the whole SQS state (fsync, atomic rename), then empty the journal."""
        payload = {
            "__ministack_format__": self.persistence._state_format_version("sqs"),
            "payload": self.sqs.get_state(),
        }
        data = json.dumps(payload, default=self.persistence._json_default).encode()
        temporary = self.state_path.with_name(self.state_path.name + ".pixsearch.tmp")
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.state_path)
        os.ftruncate(self._fd, 0)
        self.size = 0
        self.compact_at = max(MIN_COMPACT_BYTES, 2 * len(data))

    def configuration(self) -> str:
        """Every queue as configured, without its messages or the time it was last changed.

        ``pixsearch up`` creates and configures its queues at every start; only a
        change needs a compaction, which at a long backlog is a large write.
        """
        queues = {}
        for key, queue in self.sqs._queues._data.items():
            settings = {name: value for name, value in queue.items() if name != "messages"}
            attributes = dict(settings.get("attributes", {}))
            attributes.pop("LastModifiedTimestamp", None)
            queues[repr(key)] = {**settings, "attributes": attributes}
        return json.dumps(queues, sort_keys=True, default=str)

    def compacting_after(self, action: Any) -> Any:
        """``action`` (a configuration change) followed by journaling new queues and compacting."""

        def compacted(data: dict, queue_url: str) -> Any:
            before = self.configuration()
            result = action(data, queue_url)
            self.watch_queues()
            if self.configuration() != before:
                self.compact()
            return result

        return compacted


class JournaledMessages(list):
    """A queue's message list whose appends and removals go to the journal."""

    def __init__(self, messages: Any, *, key: QueueKey, journal: Journal) -> None:
        super().__init__(messages)
        self.key = key
        self.journal = journal

    def append(self, message: dict[str, Any]) -> None:
        super().append(message)
        self.journal.added(self.key, message)

    def remove(self, message: dict[str, Any]) -> None:
        super().remove(message)
        self.journal.removed(self.key, [message["id"]])

    def clear(self) -> None:
        gone = [m["id"] for m in self]
        super().clear()
        self.journal.removed(self.key, gone)

    def __deepcopy__(self, memo: dict) -> list:
        return copy.deepcopy(list(self), memo)


class JournaledQueue(dict):
    """A MiniStack queue record whose ``messages`` list is always journaled.

    MiniStack removes messages by assigning a filtered copy of the list
    (delete, dead-lettering, expiry); the messages missing from the new list
    are journaled as removed.
    """

    def __init__(self, queue: dict[str, Any], *, key: QueueKey, journal: Journal) -> None:
        super().__init__(queue)
        self.key = key
        self.journal = journal
        super().__setitem__(
            "messages", JournaledMessages(queue["messages"], key=key, journal=journal)
        )

    def __setitem__(self, name: str, value: Any) -> None:
        if name != "messages":
            super().__setitem__(name, value)
            return
        before = self["messages"]
        super().__setitem__(
            "messages", JournaledMessages(value, key=self.key, journal=self.journal)
        )
        if len(value) < len(before):
            kept = {id(m) for m in value}
            self.journal.removed(self.key, [m["id"] for m in before if id(m) not in kept])

    def __deepcopy__(self, memo: dict) -> dict:
        return copy.deepcopy(dict(self), memo)
