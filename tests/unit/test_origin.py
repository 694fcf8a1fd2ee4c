"""Image origin metadata: ASCII, within S3's 2 KB, and read back as written."""

from __future__ import annotations

from pixsearch.origin import METADATA_MAX_BYTES, ImageOrigin, source_domain


def test_a_long_non_ascii_caption_is_shortened_to_fit_and_round_trips():
    origin = ImageOrigin("http://example.com/a.jpg", "cats", "2026-01-01T00:00:00Z", "ünï " * 2000)
    metadata = origin.to_metadata()
    assert all(value.isascii() for value in metadata.values())
    assert sum(len(name) + len(value) for name, value in metadata.items()) <= METADATA_MAX_BYTES
    back = ImageOrigin.from_metadata(metadata)
    assert back.source_url == origin.source_url and back.list_name == "cats"
    assert back.caption and origin.caption.startswith(back.caption) and len(back.caption) > 100


def test_missing_metadata_is_an_empty_origin():
    assert ImageOrigin.from_metadata({}) == ImageOrigin()


def test_source_domain():
    assert source_domain("https://WWW.Example.com:8080/x.jpg") == "example.com"
    assert source_domain(None) is None
    assert source_domain("not a url") is None
