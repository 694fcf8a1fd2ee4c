"""Queue messages that survive a crash of MiniStack: a write-through journal of SQS changes.

MiniStack (``PERSIST_STATE=1``) writes its SQS state, queues and their
messages, only at a clean stop: after a ``kill -9`` every message sent since
the last start is gone, and with it the work an acknowledged object put had
queued. The fix, a :class:`~pixsearch.runtime.ministack_journal.Journal`
installed by :mod:`pixsearch.runtime.ministack_fixes`:

- Every message added to a queue and every removal (delete, dead-lettering,
  purge, expiry) is journaled before the request is answered.
- S3 -> SQS notifications are delivered by the request that writes the
  object, once the object is journaled, not by a thread started after it was
  answered: an acknowledged put has its message in the journal, and no
  thread races the event loop over a queue's message list.
- At start, after MiniStack has read its ``sqs.json``, the journal is
  replayed over it (adds are keyed by message id and removals are
  idempotent), then compacted: ``sqs.json`` written whole, the journal
  emptied. Compaction also follows every change of queue configuration
  (create, delete, attributes, tags, permissions).

Receives are not journaled: after a crash a message that was in flight is
visible again with the receive count of the last compaction. Delivery is at
least once and every stage is idempotent, so that costs a redelivery at most.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from pixsearch.runtime.ministack_journal import Journal, service_state, write_durably

log = logging.getLogger("pixsearch.ministack")

JOURNAL = "pixsearch-sqs-journal.jsonl"

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


class QueueJournal(Journal):
    """The message changes of every queue since ``sqs.json`` was last written."""

    def __init__(self, sqs: Any, persistence: Any, state_dir: Path) -> None:
        super().__init__(state_dir / JOURNAL, persistence)
        self.sqs = sqs
        self.state_path = state_dir / "sqs.json"

    def added(self, key: QueueKey, message: dict[str, Any]) -> None:
        self.append({"q": key, "add": message})

    def removed(self, key: QueueKey, message_ids: list[str]) -> None:
        if message_ids:
            self.append({"q": key, "del": message_ids})

    def recover(self) -> int:
        """Replay the journal over the state MiniStack loaded, journal every queue, compact."""
        queues = self.sqs._queues._data
        by_queue = {key: {m["id"]: m for m in q["messages"]} for key, q in queues.items()}
        replayed = 0
        for entry in self.entries():
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
        if replayed or self.torn:
            log.warning("replayed %d queue change(s) after a crash (%d torn)", replayed, self.torn)
        return replayed

    def watch_queues(self) -> None:
        """Journal the message changes of every queue not journaled yet."""
        queues = self.sqs._queues._data
        for key, queue in list(queues.items()):
            if not isinstance(queue, JournaledQueue):
                queues[key] = JournaledQueue(queue, key=tuple(key), journal=self)

    def compact(self) -> None:
        """Write the whole SQS state (fsync, atomic rename), then empty the journal."""
        data = service_state(self.persistence, "sqs", self.sqs.get_state())
        write_durably(self.state_path, data)
        self.emptied(len(data))

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

    def __init__(self, messages: Any, *, key: QueueKey, journal: QueueJournal) -> None:
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

    def __init__(self, queue: dict[str, Any], *, key: QueueKey, journal: QueueJournal) -> None:
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
