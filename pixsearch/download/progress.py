"""Live counters of a list part while the download stage works on it.

A part's URL map is written once, when the part is done; until then a small
``progress/{list}/{part}.json`` object says how many of its rows have an
outcome. It is rewritten at most every ``interval_s`` while rows finish and
removed after the map is written, so a reader adds the counters of parts
without a current map to the rows of the maps.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter

from pixsearch import layout
from pixsearch.download.outcome import MapRow
from pixsearch.download.parts import ListPart
from pixsearch.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


class PartProgress:
    """Counts finished rows of ``part`` and publishes them from a background thread."""

    def __init__(
        self, store: ObjectStore, part: ListPart, *, already_done: int, interval_s: float = 1.0
    ) -> None:
        self.store = store
        self.part = part
        self.key = layout.part_progress_key(part.list_name, part.part)
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter(kept=already_done)
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_forever, daemon=True)

    def add(self, row: MapRow) -> None:
        with self._lock:
            self.counts[row.status] += 1
        self._changed.set()

    def start(self) -> PartProgress:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing and remove the counters (the part's map has the rows now)."""
        self._stop.set()
        self._changed.set()
        self._thread.join()
        try:
            self.store.delete(self.key)
        except Exception:  # noqa: BLE001 - a stale counter only shows until the map exists
            log.warning("could not remove %s", self.key, exc_info=True)

    def _publish_forever(self) -> None:
        while not self._stop.is_set():
            self._changed.wait()
            if self._stop.is_set():
                return
            self._changed.clear()
            with self._lock:
                counts = dict(self.counts)
            body = {"list_etag": self.part.list_etag, "part": self.part.part, "counts": counts}
            try:
                self.store.put(self.key, json.dumps(body).encode())
            except Exception:  # noqa: BLE001 - progress is best effort, the map is the truth
                log.warning("could not publish %s", self.key, exc_info=True)
            self._stop.wait(self.interval_s)


def rows_in_flight(store: ObjectStore, list_name: str, list_etag: str) -> dict[int, int]:
    """Rows with an outcome, by part, of the parts of this list version in flight now."""
    done: dict[int, int] = {}
    for info in store.list(f"{layout.PROGRESS}{list_name}/"):
        try:
            body = json.loads(store.get(info.key))
        except (ObjectNotFound, ValueError):
            continue
        if body.get("list_etag") == list_etag:
            done[int(body["part"])] = sum(int(n) for n in body.get("counts", {}).values())
    return done
