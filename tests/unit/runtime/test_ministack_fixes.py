"""The MiniStack fix matches the installed MiniStack."""

from __future__ import annotations

from importlib.metadata import version

from pixsearch.runtime import ministack_fixes, ministack_ranges


def test_the_installed_ministack_is_the_one_the_fix_was_written_for():
    assert version("ministack") == ministack_fixes.VERSION
    assert ministack_fixes.mismatches() == [], (
        "MiniStack changed under the fix: re-read these functions, adapt pixsearch/runtime/"
        "ministack_fixes.py, then update FINGERPRINTS"
    )


def test_the_range_fix_matches_the_installed_ministack():
    assert ministack_ranges.mismatches() == [], (
        "MiniStack changed under the range fix: re-read these functions, adapt "
        "pixsearch/runtime/ministack_ranges.py, then update FINGERPRINTS"
    )
