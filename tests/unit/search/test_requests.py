"""Request validation: every malformed request maps to one clear 4xx error code."""

from __future__ import annotations

import json

import pytest

from pixsearch.config import Settings
from pixsearch.search.errors import BadRequest, PayloadTooLarge, SearchError
from pixsearch.search.requests import DEFAULT_K, parse_json, parse_upload

SETTINGS = Settings(search_k_max=20, search_text_max_chars=50, search_upload_max_bytes=1000)


def error_of(body: bytes | str) -> SearchError:
    with pytest.raises(SearchError) as caught:
        parse_json(body, SETTINGS)
    return caught.value


def test_text_query_with_defaults() -> None:
    request = parse_json(b'{"query_text": "  a sunset over the mountains "}', SETTINGS)
    assert (request.kind, request.text, request.k, request.min_score) == (
        "text",
        "a sunset over the mountains",
        DEFAULT_K,
        None,
    )


def test_image_key_query_with_k_and_min_score() -> None:
    body = json.dumps({"image_key": "images/ab/abc.jpg", "k": 20, "min_score": 0.25})
    request = parse_json(body, SETTINGS)
    assert (request.kind, request.image_key, request.k, request.min_score) == (
        "image_key",
        "images/ab/abc.jpg",
        20,
        0.25,
    )


def test_image_url_query() -> None:
    request = parse_json(b'{"image_url": "https://example.org/cat.jpg", "k": 1}', SETTINGS)
    assert (request.kind, request.image_url, request.k) == (
        "image_url",
        "https://example.org/cat.jpg",
        1,
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "malformed_json"),
        (b"   ", "malformed_json"),
        (b"{not json", "malformed_json"),
        (b'{"query_text": "a"', "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b'["a red car"]', "malformed_json"),
        (b'"a red car"', "malformed_json"),
        (b"{}", "missing_query"),
        (b'{"k": 3}', "missing_query"),
        (b'{"query_text": "   "}', "missing_query"),
        (b'{"query_text": null}', "missing_query"),
        (b'{"query_text": "a", "image_key": "images/ab/x.jpg"}', "conflicting_query"),
        (b'{"query_text": "a", "image_url": "https://example.org/x.jpg"}', "conflicting_query"),
        (b'{"query_text": "a", "k": 0}', "invalid_k"),
        (b'{"query_text": "a", "k": -1}', "invalid_k"),
        (b'{"query_text": "a", "k": 21}', "invalid_k"),
        (b'{"query_text": "a", "k": 2.5}', "invalid_k"),
        (b'{"query_text": "a", "k": "5"}', "invalid_k"),
        (b'{"query_text": "a", "k": true}', "invalid_k"),
        (b'{"query_text": "a", "k": null}', "invalid_k"),
        (b'{"query_text": "a", "min_score": "high"}', "invalid_min_score"),
        (b'{"query_text": "a", "min_score": 1.5}', "invalid_min_score"),
        (b'{"query_text": "a", "min_score": 1e400}', "invalid_min_score"),
        (b'{"query_text": 42}', "invalid_query_text"),
        (b'{"query_text": "' + b"x" * 51 + b'"}', "text_too_long"),
        (b'{"image_key": "maps/list/00000.jsonl"}', "invalid_image_key"),
        (b'{"image_key": "images/"}', "invalid_image_key"),
        (b'{"image_url": "file:///etc/passwd"}', "invalid_image_url"),
        (b'{"query": "a red car"}', "unknown_field"),
    ],
)
def test_bad_json_bodies(body: bytes, code: str) -> None:
    error = error_of(body)
    assert isinstance(error, BadRequest)
    assert (error.status, error.code) == (400, code), error.message
    assert error.message


def test_text_at_the_length_cap_is_accepted() -> None:
    assert parse_json(json.dumps({"query_text": "x" * 50}), SETTINGS).text == "x" * 50


def test_oversized_body_is_413() -> None:
    error = error_of(json.dumps({"query_text": "a", "pad": "x" * 1000}))
    assert isinstance(error, PayloadTooLarge)
    assert (error.status, error.code) == (413, "body_too_large")


def test_upload_with_form_fields() -> None:
    request = parse_upload(b"\x89PNG...", {"k": "3", "min_score": "-0.5"}, SETTINGS)
    assert (request.kind, request.image_bytes, request.k, request.min_score) == (
        "upload",
        b"\x89PNG...",
        3,
        -0.5,
    )


@pytest.mark.parametrize(
    ("image", "form", "status", "code"),
    [
        (None, {}, 400, "missing_query"),
        (b"", {}, 400, "invalid_image"),
        (b"x" * 1001, {}, 413, "upload_too_large"),
        (b"img", {"k": "three"}, 400, "invalid_k"),
        (b"img", {"k": "0"}, 400, "invalid_k"),
        (b"img", {"k": "21"}, 400, "invalid_k"),
        (b"img", {"min_score": "nan"}, 400, "invalid_min_score"),
        (b"img", {"min_score": "x"}, 400, "invalid_min_score"),
        (b"img", {"query_text": "a"}, 400, "unknown_field"),
    ],
)
def test_bad_uploads(image: bytes | None, form: dict[str, str], status: int, code: str) -> None:
    with pytest.raises(SearchError) as caught:
        parse_upload(image, form, SETTINGS)
    assert (caught.value.status, caught.value.code) == (status, code)
