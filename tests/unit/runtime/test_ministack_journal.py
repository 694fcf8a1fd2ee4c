"""The journal mechanism on MiniStack's own modules, in this process."""

from __future__ import annotations

import json

from ministack.core import persistence
from ministack.services import s3

from pixsearch.runtime.ministack_object_journal import JOURNAL, SNAPSHOT, ObjectJournal


def test_a_line_cut_short_is_cut_off_so_the_next_entry_starts_a_line(tmp_path):
    (tmp_path / JOURNAL).write_bytes(b'{"b": ["a", "b"], "k": "x", "d": 1}\n{"b": ["a", "b"], "k')
    journal = ObjectJournal(s3, persistence, tmp_path)
    assert journal.entries() == [{"b": ["a", "b"], "k": "x", "d": 1}] and journal.torn == 1
    journal.removed("bucket", "y")
    assert [entry["k"] for entry in journal.entries()] == ["x", "y"] and journal.torn == 1


def test_a_compaction_in_the_middle_of_a_write_keeps_its_intent(tmp_path):
    journal = ObjectJournal(s3, persistence, tmp_path)
    journal.compact_at = 0  # the next append compacts
    journal.writing("bucket", "key")
    assert (tmp_path / SNAPSHOT).exists()
    assert [(e["k"], "w" in e) for e in journal.entries()] == [("key", True)]
    journal.compact_at = 0
    journal.written("bucket", "key", {"body": None, "etag": '"e"', "size": 1})
    assert journal.entries() == []  # the outcome is known: no intent carried over
    assert json.loads((tmp_path / SNAPSHOT).read_text())["buckets"] == []  # nothing stored
