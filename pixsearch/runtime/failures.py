"""Why the local runtime failed a record: the first reason per SQS message id, kept on disk.

Lambda tells the queue only *that* a record failed; the reason lives in the
function's logs. The local runtime notes the first reason of every record it
fails in a JSON Lines file in the data directory, so ``pixsearch dlq list`` and
the web app can show it next to a dead-lettered message (message ids survive
the move to the dead-letter queue).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

JOURNAL_FILE = "failures.jsonl"
_MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class FailureNote:
    stage: str
    reason: str
    at: float  # Unix time of the first failure


class FailureJournal:
    """Append-only: a record's first failure is kept, later ones add nothing."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir).expanduser() / JOURNAL_FILE
        self._noted: set[str] | None = None
        self._lock = threading.Lock()

    def note(self, stage: str, reasons: dict[str, str]) -> None:
        """Record ``reasons`` (message id -> why) for the ids not noted before."""
        with self._lock:
            noted = self._known()
            fresh = {mid: why for mid, why in reasons.items() if mid not in noted}
            if not fresh:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            now = time.time()
            with self.path.open("a", encoding="utf-8") as journal:
                for message_id, reason in fresh.items():
                    line = {"id": message_id, "stage": stage, "reason": reason[:_MAX_REASON_CHARS]}
                    journal.write(json.dumps({**line, "at": now}) + "\n")
            noted.update(fresh)

    def read(self) -> dict[str, FailureNote]:
        """Every noted first failure, by message id (empty when nothing failed here)."""
        notes: dict[str, FailureNote] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return notes
        for line in lines:
            try:
                entry = json.loads(line)
                note = FailureNote(entry["stage"], entry["reason"], float(entry["at"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            notes.setdefault(entry["id"], note)
        return notes

    def _known(self) -> set[str]:
        if self._noted is None:
            self._noted = set(self.read())
        return self._noted
