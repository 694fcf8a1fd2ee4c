"""Write-through journals: MiniStack state that survives a crash, the one mechanism.

MiniStack writes its state (``PERSIST_STATE=1``) only at a clean stop, and
after a ``kill -9`` it knows only what its files said then. pixsearch keeps
each kind of state it cannot lose as *compacted state + journal*:

- Every change is appended to the journal as one JSON line, with ``os.write``
  on an ``O_APPEND`` descriptor, before the request is answered. Written to
  the operating system, a line survives the death of the process (not a power
  cut: MiniStack does not fsync its object files either).
- At start the journal is replayed over the compacted state. Entries are
  idempotent, so replaying one twice changes nothing and a crash between
  writing new state and emptying the journal is harmless. A line cut short
  by the crash is skipped.
- *Compaction* writes the whole state (fsync, atomic rename), then empties
  the journal; it follows a clean stop and a journal grown past ``growth``
  times the last state (at least ``MIN_COMPACT_BYTES``), so the journal to
  replay stays small.

Users: :mod:`pixsearch.runtime.ministack_queue_journal` (queue messages) and
:mod:`pixsearch.runtime.ministack_object_journal` (object metadata).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("pixsearch.ministack")

MIN_COMPACT_BYTES = 16 << 20


class Journal:
    """The append-only log of changes since the last compaction of the state it follows."""

    growth = 2.0

    def __init__(self, path: Path, persistence: Any) -> None:
        self.path = path
        self.persistence = persistence  # ministack.core.persistence: its JSON codec
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self._fd).st_size
        self.compact_at = MIN_COMPACT_BYTES
        self.torn = 0

    def compact(self) -> None:
        """Write the whole state durably, then :meth:`emptied`."""
        raise NotImplementedError

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, default=self.persistence._json_default) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view) :]
        self.size += len(line)
        if self.size > self.compact_at:
            try:
                self.compact()
            except OSError:  # the change itself is journaled: keep serving, try again later
                log.warning("could not compact %s", self.path.name, exc_info=True)
                self.compact_at = 2 * self.size

    def entries(self) -> list[dict[str, Any]]:
        """Every whole entry, oldest first; ``torn`` counts the lines cut short.

        A last line without its newline is cut off the file, so that the
        next entry starts a line of its own.
        """
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            whole = data.rfind(b"\n") + 1
            self.torn += bool(data)
            os.ftruncate(self._fd, whole)
            self.size, data = whole, data[:whole]
        data = data.rstrip(b"\n")
        if not data:
            return []
        hook = self.persistence._json_object_hook
        try:  # one parse for the whole file: JSON lines hold no raw newline
            return json.loads(b"[" + data.replace(b"\n", b",") + b"]", object_hook=hook)
        except ValueError:
            pass
        entries = []
        for line in data.split(b"\n"):
            try:
                entries.append(json.loads(line, object_hook=hook))
            except ValueError:
                self.torn += 1  # the line being written when the process died
        return entries

    def emptied(self, state_bytes: int) -> None:
        """The state is written: start the journal afresh and set when to compact next."""
        os.ftruncate(self._fd, 0)
        self.size = 0
        self.compact_at = max(MIN_COMPACT_BYTES, int(self.growth * state_bytes))


def write_durably(path: Path, data: bytes) -> None:
    """``data`` as the whole of ``path``: fsync, then an atomic rename over the old file."""
    temporary = path.with_name(path.name + ".pixsearch.tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def service_state(persistence: Any, service: str, state: Any) -> bytes:
    """A service's state as MiniStack's own ``<service>.json`` holds it."""
    payload = {"__ministack_format__": persistence._state_format_version(service), "payload": state}
    return json.dumps(payload, default=persistence._json_default).encode()
