"""URL list parsing across formats, encodings and bad rows."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pixsearch.download.urllist import (
    BadRow,
    UrlEntry,
    UrlListError,
    list_format,
    parse_url_list,
    parse_url_list_stream,
)

A = "http://a.example/1.jpg"
B = "https://b.example/2.png?x=1"


def _urls(rows: list[UrlEntry | BadRow]) -> list[str]:
    return [row.url for row in rows if isinstance(row, UrlEntry)]


def test_text_list_tolerates_bom_crlf_blanks_comments_and_spaces() -> None:
    data = ("\ufeff# my list\r\n  " + A + "  \r\n\r\n\t" + B + "\r\n").encode()
    rows = parse_url_list(data, "urls/x.txt")
    assert rows == [UrlEntry(2, A), UrlEntry(4, B)]


def test_text_list_bad_rows_keep_their_line_and_reason() -> None:
    data = f"{A}\nftp://c.example/x.jpg\nnot a url\nhttp://\n".encode()
    rows = parse_url_list(data, "urls/x.txt")
    assert rows[0] == UrlEntry(1, A)
    assert [(r.line, r.reason) for r in rows[1:] if isinstance(r, BadRow)] == [
        (2, "bad_url"),
        (3, "bad_url"),
        (4, "bad_url"),
    ]


def test_invalid_utf8_fails_only_its_row() -> None:
    data = A.encode() + b"\nhttp://x.example/\xff\xfe.jpg\n"
    rows = parse_url_list(data, "urls/x.txt")
    assert _urls(rows)[0] == A
    assert len(rows) == 2


def test_gzip_variant_and_gzip_sniffed_without_extension() -> None:
    data = gzip.compress(f"{A}\n{B}\n".encode())
    assert _urls(parse_url_list(data, "urls/x.txt.gz")) == [A, B]
    assert _urls(parse_url_list(data, "urls/x.txt")) == [A, B]


def test_corrupt_gzip_and_gzip_bomb_are_list_errors() -> None:
    with pytest.raises(UrlListError, match="gzip data is corrupt"):
        parse_url_list(b"\x1f\x8b" + b"garbage" * 10, "urls/x.txt.gz")
    bomb = gzip.compress(b"a" * 100_000)
    with pytest.raises(UrlListError, match="more than 1000 bytes"):
        parse_url_list(bomb, "urls/x.txt.gz", max_bytes=1000)


def test_csv_with_caption_quoted_fields_and_short_rows() -> None:
    text = f'\ufeffID, URL ,Caption\r\n1,{A},"a red, round thing"\r\n\r\n2\r\n3,{B}\r\n4,,empty\r\n'
    rows = parse_url_list(text.encode(), "urls/x.csv")
    assert rows[0] == UrlEntry(2, A, "a red, round thing")
    assert isinstance(rows[1], BadRow) and (rows[1].line, rows[1].reason) == (4, "missing_url")
    assert rows[2] == UrlEntry(5, B)
    assert isinstance(rows[3], BadRow) and rows[3].reason == "missing_url"


def test_tsv_and_configurable_column() -> None:
    text = f"link\tcaption\n{A}\tone\n"
    rows = parse_url_list(text.encode(), "urls/x.tsv", url_column="link")
    assert rows == [UrlEntry(2, A, "one")]


def test_csv_without_url_column_is_one_clear_error() -> None:
    with pytest.raises(UrlListError, match="no 'url' column.*PIXSEARCH_DOWNLOAD_URL_COLUMN"):
        parse_url_list(b"a,b\n1,2\n", "urls/x.csv")


def test_jsonl_rows() -> None:
    lines = [
        json.dumps({"url": A, "caption": "cap"}),
        "",
        "{broken",
        json.dumps(["not", "an", "object"]),
        json.dumps({"href": A}),
        json.dumps({"url": B, "caption": 3}),
    ]
    rows = parse_url_list("\n".join(lines).encode(), "urls/x.jsonl")
    assert rows[0] == UrlEntry(1, A, "cap")
    assert [(r.line, r.reason) for r in rows[1:4] if isinstance(r, BadRow)] == [
        (3, "bad_row"),
        (4, "bad_row"),
        (5, "missing_url"),
    ]
    assert rows[4] == UrlEntry(6, B)


def test_parquet_rows_with_nulls() -> None:
    buffer = io.BytesIO()
    table = pa.table({"URL": [A, None, B], "caption": ["x", None, None]})
    pq.write_table(table, buffer)
    rows = parse_url_list(buffer.getvalue(), "urls/x.parquet")
    assert rows[0] == UrlEntry(1, A, "x")
    assert isinstance(rows[1], BadRow) and rows[1].reason == "missing_url"
    assert rows[2] == UrlEntry(3, B)


def test_unreadable_parquet_and_unknown_format() -> None:
    with pytest.raises(UrlListError, match="not a readable parquet file"):
        parse_url_list(b"PAR1 nope", "urls/x.parquet")
    with pytest.raises(UrlListError, match="unsupported list format '.xlsx'|'xlsx'"):
        list_format("urls/x.xlsx")
    assert list_format("urls/dir/x.CSV.gz") == "csv"


def test_empty_list_has_no_rows() -> None:
    assert parse_url_list(b"", "urls/x.txt") == []
    assert parse_url_list(b"url\n", "urls/x.csv") == []


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_a_streamed_text_list_gives_the_rows_of_the_whole_one(newline: str, gzipped: bool):
    lines = ["\ufeff# urls", "http://a.example/1.jpg", "", "  http://b.example/2.png  ", "nope"]
    data = (newline.join(lines * 20) + newline).encode()
    data = gzip.compress(data) if gzipped else data
    whole = parse_url_list(data, "urls/a.txt")
    for size in (1, 2, 5, 64, len(data)):
        chunks = (data[i : i + size] for i in range(0, len(data), size))
        assert parse_url_list_stream(chunks, "urls/a.txt") == whole


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_a_streamed_list_over_the_cap_is_refused_without_reading_it_all(gzipped: bool):
    data = b"http://a.example/x.jpg\n" * 1000
    data = gzip.compress(data) if gzipped else data
    read: list[int] = []

    def chunks():
        for i in range(0, len(data), 100):
            read.append(i)
            yield data[i : i + 100]

    with pytest.raises(UrlListError, match="more than 500 bytes"):
        parse_url_list_stream(chunks(), "urls/a.txt", max_bytes=500)
    assert len(read) < len(range(0, len(data), 100))  # it stopped before the end
