"""Header rules of the fetcher: X-Robots-Tag and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pixsearch.download.fetch import retry_after_s, robots_disallow


@pytest.mark.parametrize(
    ("values", "disallowed"),
    [
        ([], False),
        (["noai"], True),
        (["NoImageAI"], True),
        (["noindex, noai"], True),
        (["noindex", "nofollow"], False),
        (["otherbot: noai"], False),
        (["pixsearch: noimageai"], True),
        (["noai, unavailable_after: 25 Jun 2010 15:00:00 PST"], True),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST"], False),
        (["otherbot: noindex", "noimageai"], True),
    ],
)
def test_robots_directives(values: list[str], disallowed: bool) -> None:
    assert robots_disallow(values) is disallowed


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after_s("7") == 7.0
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_s(later) or 0) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_s(earlier) == 0.0
