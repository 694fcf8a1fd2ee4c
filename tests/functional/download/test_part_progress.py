"""Counters of a part in flight: published while rows finish, gone once the part is done."""

from __future__ import annotations

import time

from pixsearch import layout
from pixsearch.download.outcome import DownloadFailure, MapRow
from pixsearch.download.parts import ListPart, write_parts
from pixsearch.download.progress import PartProgress, rows_in_flight
from pixsearch.download.urllist import UrlEntry
from pixsearch.storage import ObjectStore
from pixsearch.webui.progress import ProgressReader


def test_counters_follow_finished_rows_then_disappear(store: ObjectStore):
    rows = tuple(UrlEntry(line, f"http://example.com/{line}.jpg") for line in range(5))
    part = ListPart("urls/trip.txt", "etag-1", 0, 2, rows)
    progress = PartProgress(store, part, already_done=1, interval_s=0.05).start()
    for line in (1, 2):
        progress.add(MapRow.failed(line, rows[line].url, DownloadFailure("http_404", "gone")))

    deadline = time.monotonic() + 10
    while rows_in_flight(store, "trip.txt", "etag-1") != {0: 3} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows_in_flight(store, "trip.txt", "etag-1") == {0: 3}
    assert rows_in_flight(store, "trip.txt", "another-version") == {}
    write_parts(store, [part])
    reader = ProgressReader(store, "any-model")
    listed = reader.list_progress("trip.txt")
    assert (listed.processed, listed.total) == (3, 5)

    progress.stop()
    assert store.count(layout.PROGRESS) == 0
