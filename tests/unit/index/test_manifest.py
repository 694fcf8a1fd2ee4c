"""The manifest's JSON form: round trip, and refusal of anything altered."""

from __future__ import annotations

import json

import pytest

from pixsearch.index.manifest import (
    CorruptIndex,
    Manifest,
    QuantizerEntry,
    SegmentEntry,
    ShardSetEntry,
    parse,
)

TAG = "m__none"


QUANTIZER = QuantizerEntry("q" * 32, "9" * 64, "IVF128,SQ8", 128, 8)


def _manifest() -> Manifest:
    segments = (
        SegmentEntry("a" * 32, 10, "flat", "Flat", "1" * 64, "2" * 64, "5" * 64, dead=2),
        SegmentEntry(
            "b" * 32,
            5000,
            "ivf",
            "IVF128,SQ8",
            "3" * 64,
            "4" * 64,
            "6" * 64,
            "q" * 32,
            {"nprobe": 8},
        ),
    )
    return Manifest(
        TAG,
        32,
        7,
        segments,
        frozenset({"s1", "s2"}),
        {"images/x.png": 1_700_000_000.0},
        QUANTIZER,
        ShardSetEntry("z" * 32, "8" * 64, 300),
    )


def test_round_trip_and_live_count():
    manifest = _manifest()
    assert parse(manifest.to_json(), TAG) == manifest
    assert manifest.vector_count == 5008
    assert manifest.next().version == 8


@pytest.mark.parametrize(
    "change",
    [
        {"vector_count": 5009},
        {"version": 8},
        {"shards": ["s1"]},
        {"format": 1},
        {"tombstones": {}},
    ],
)
def test_any_change_without_a_new_checksum_is_refused(change: dict):
    body = json.loads(_manifest().to_json())
    body.update(change)
    with pytest.raises(CorruptIndex, match="checksum"):
        parse(json.dumps(body).encode(), TAG)


def test_inconsistent_or_foreign_manifests_are_refused():
    with pytest.raises(CorruptIndex, match="not 'other__none'"):
        parse(_manifest().to_json(), "other__none")
    with pytest.raises(CorruptIndex, match="unreadable"):
        parse(b"not json", TAG)
    bad_kind = Manifest(TAG, 32, 1, (SegmentEntry("c" * 32, 1, "lsh", "LSH", "", "", ""),))
    with pytest.raises(CorruptIndex, match="bad kind"):
        parse(bad_kind.to_json(), TAG)
