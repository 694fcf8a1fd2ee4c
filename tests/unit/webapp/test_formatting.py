from __future__ import annotations

import pytest

from pixsearch.webui.formatting import format_age, format_score


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "never"),
        (-3.0, "0 s ago"),
        (0.4, "0 s ago"),
        (59.9, "59 s ago"),
        (60.0, "1 min ago"),
        (3599.0, "59 min ago"),
        (7200.5, "2 h ago"),
        (3 * 86_400 + 5, "3 d ago"),
    ],
)
def test_age_reads_in_the_largest_whole_unit(seconds: float | None, text: str):
    assert format_age(seconds) == text


def test_score_keeps_three_decimals():
    assert format_score(0.87654) == "score 0.877"
    assert format_score(-0.1) == "score -0.100"
