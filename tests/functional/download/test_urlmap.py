"""URL maps and the list summary on moto server, including parts finishing together."""

from __future__ import annotations

from pixsearch import layout
from pixsearch.download.outcome import DownloadFailure, MapRow, now_iso
from pixsearch.download.urlmap import read_maps, read_summary, write_map, write_summary_if_complete
from pixsearch.storage import ObjectInfo, ObjectStore

LIST_KEY = "urls/cats.txt"


def _rows(part: int, failed: bool) -> list[MapRow]:
    url = f"http://example.com/{part}.jpg"
    if failed:
        return [MapRow.failed(part + 1, url, DownloadFailure("timeout", "slow"))]
    return [MapRow(line=part + 1, url=url, status="ok", key=f"images/{part}", fetched_at=now_iso())]


def test_summary_waits_for_every_part_of_the_same_list_version(store: ObjectStore) -> None:
    write_map(store, "cats.txt", 0, "v1", _rows(0, False), now_iso())
    assert write_summary_if_complete(store, LIST_KEY, "v1", 2) is None
    write_map(store, "cats.txt", 1, "v0", _rows(1, False), now_iso())
    assert write_summary_if_complete(store, LIST_KEY, "v1", 2) is None
    write_map(store, "cats.txt", 1, "v1", _rows(1, True), now_iso())
    summary = write_summary_if_complete(store, LIST_KEY, "v1", 2)
    assert summary is not None and summary == read_summary(store, "cats.txt")
    assert summary["counts"] == {"ok": 1, "duplicate": 0, "failed": 1}
    assert summary["failed_by_reason"] == {"timeout": 1}
    assert summary["success_rate"] == 0.5
    assert set(summary["part_maps"]) == {"00000", "00001"}


class _PartFinishesMeanwhile(ObjectStore):
    """A real store on which part 1 finishes again right after its map was read."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(store.bucket, store.s3)
        self.pending = True

    def get_with_info(self, key: str) -> tuple[bytes, ObjectInfo]:
        result = super().get_with_info(key)
        if key == layout.url_map_key("cats.txt", 1) and self.pending:
            self.pending = False
            other = ObjectStore(self.bucket, self.s3)
            write_map(other, "cats.txt", 1, "v1", _rows(1, False), now_iso())
            assert write_summary_if_complete(other, LIST_KEY, "v1", 2) is not None
        return result


def test_a_summary_from_older_maps_never_overwrites_a_newer_one(store: ObjectStore) -> None:
    for part in (0, 1):
        write_map(store, "cats.txt", part, "v1", _rows(part, True), now_iso())
    write_summary_if_complete(store, LIST_KEY, "v1", 2)

    # Part 0 finishes; while it reads the maps, part 1 finishes too and writes its summary.
    write_map(store, "cats.txt", 0, "v1", _rows(0, False), now_iso())
    racing = _PartFinishesMeanwhile(store)
    summary = write_summary_if_complete(racing, LIST_KEY, "v1", 2)

    assert not racing.pending
    latest = {f"{m.part:05d}": m.etag for m in read_maps(store, "cats.txt")}
    assert summary is not None and summary["part_maps"] == latest
    assert read_summary(store, "cats.txt") == summary
    assert summary["counts"]["ok"] == 2
