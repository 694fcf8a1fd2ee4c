from __future__ import annotations

from pixsearch.download.outcome import MapRow
from pixsearch.webui.progress import FailureGroup, ListProgress, group_failures


def row(line: int, status: str, error: str | None = None) -> MapRow:
    return MapRow(
        line=line,
        url=f"http://h.example/{line}",
        status=status,  # type: ignore[arg-type]
        key=None if status == "failed" else f"images/aa/{line}.jpg",
        error=error,
        message=f"detail {line}" if error else None,
    )


def test_failures_are_grouped_by_reason_most_frequent_first_with_the_first_example():
    rows = [
        row(1, "ok"),
        row(2, "failed", "timeout"),
        row(3, "failed", "http_404"),
        row(4, "duplicate"),
        row(5, "failed", "http_404"),
        row(6, "failed", "not_image"),
        row(7, "failed", None),
    ]
    assert group_failures(rows) == (
        FailureGroup("http_404", 2, "http://h.example/3", "detail 3"),
        FailureGroup("not_image", 1, "http://h.example/6", "detail 6"),
        FailureGroup("timeout", 1, "http://h.example/2", "detail 2"),
        FailureGroup("unknown", 1, "http://h.example/7", None),
    )


def test_no_failures_no_groups():
    assert group_failures([row(1, "ok"), row(2, "duplicate")]) == ()


def progress(**changes) -> ListProgress:
    values = dict(
        name="l",
        total=4,
        processed=4,
        downloaded=3,
        duplicates=0,
        failed=1,
        failures=(),
        images=3,
        embedded=3,
        indexed=3,
    )
    values.update(changes)
    return ListProgress(**values)


def test_a_list_is_complete_once_every_url_has_an_outcome_and_every_image_is_indexed():
    assert progress().complete
    assert not progress(processed=3).complete
    assert not progress(indexed=2).complete
    assert progress(processed=3, summary={"urls": 3}).downloads_done


def test_a_list_not_yet_split_has_not_started():
    waiting = progress(total=None, processed=0, downloaded=0, failed=0, images=0)
    assert not waiting.started
    assert not waiting.complete
