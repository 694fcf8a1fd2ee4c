"""URL list parsing: ``.txt``, ``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``, optionally gzipped.

Tolerant of what real lists contain (BOM, CRLF, blank lines, surrounding
whitespace, ``#`` comments in text lists). A row that cannot give a usable URL
becomes a :class:`BadRow` with a reason, so it still gets its line in the URL
map; only a list that cannot be read at all raises :class:`UrlListError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from yarl import URL

from pixsearch.download.ssrf import ALLOWED_SCHEMES

FORMATS = ("txt", "csv", "tsv", "jsonl", "parquet")
_GZIP_MAGIC = b"\x1f\x8b"


class UrlListError(ValueError):
    """The list as a whole cannot be parsed; the message says why and what to change."""


@dataclass(frozen=True)
class UrlEntry:
    """A usable URL at ``line`` (1-based line of a text format, row of a parquet file)."""

    line: int
    url: str
    caption: str | None = None


@dataclass(frozen=True)
class BadRow:
    """A row that gave no usable URL; ``reason`` is a stable code, ``message`` the detail."""

    line: int
    raw: str
    reason: str
    message: str


Row = UrlEntry | BadRow


def list_format(key: str) -> str:
    """``urls/a.csv.gz`` -> ``csv``; :class:`UrlListError` for anything not in :data:`FORMATS`."""
    name = key.rsplit("/", 1)[-1].lower().removesuffix(".gz")
    ext = name.rpartition(".")[2] if "." in name else ""
    if ext not in FORMATS:
        raise UrlListError(
            f"{key!r}: unsupported list format {ext or '(no extension)'!r}; "
            f"use one of {', '.join('.' + f for f in FORMATS)} (optionally .gz)"
        )
    return ext


def parse_url_list(
    data: bytes,
    key: str,
    *,
    url_column: str = "url",
    caption_column: str = "caption",
    max_bytes: int = 512 * 1024 * 1024,
) -> list[Row]:
    """Every row of the list at ``key`` (format from its extension), in order."""
    fmt = list_format(key)
    data = _gunzip(data, key, max_bytes) if data.startswith(_GZIP_MAGIC) else data
    if fmt == "parquet":
        return list(_parquet_rows(data, key, url_column, caption_column))
    text = data.decode("utf-8-sig", errors="replace")
    if fmt == "txt":
        return list(_text_rows(text))
    if fmt == "jsonl":
        return list(_jsonl_rows(text, url_column, caption_column))
    return list(_csv_rows(text, key, "\t" if fmt == "tsv" else ",", url_column, caption_column))


def parse_url_list_stream(
    chunks: Iterable[bytes],
    key: str,
    *,
    url_column: str = "url",
    caption_column: str = "caption",
    max_bytes: int = 512 * 1024 * 1024,
) -> list[Row]:
    """:func:`parse_url_list` over a stream, never holding more than ``max_bytes`` of it.

    A text list is parsed line by line as it arrives, so only its rows stay in
    memory; other formats need the whole file and are read up to the cap.
    """
    fmt = list_format(key)
    data = _capped(chunks, key, max_bytes)
    if fmt == "txt":
        return list(_text_rows_of_chunks(data))
    return parse_url_list(
        b"".join(data),
        key,
        url_column=url_column,
        caption_column=caption_column,
        max_bytes=max_bytes,
    )


def _capped(chunks: Iterable[bytes], key: str, max_bytes: int) -> Iterator[bytes]:
    """The (gunzipped) bytes of ``chunks``; :class:`UrlListError` past ``max_bytes``."""
    chunks = iter(chunks)
    head = b""
    while len(head) < len(_GZIP_MAGIC) and (more := next(chunks, None)) is not None:
        head += more
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if head[:2] == _GZIP_MAGIC else None
    size = 0
    for chunk in itertools.chain([head], chunks):
        try:
            out = inflater.decompress(chunk, max_bytes - size + 1) if inflater else chunk
        except zlib.error as error:
            raise UrlListError(f"{key!r}: gzip data is corrupt ({error})") from None
        size += len(out)
        if size > max_bytes or (inflater is not None and inflater.unconsumed_tail):
            raise UrlListError(
                f"{key!r}: more than {max_bytes} bytes (PIXSEARCH_DOWNLOAD_LIST_MAX_BYTES, "
                "or PIXSEARCH_DOWNLOAD_MEMORY_MB for the download function's memory)"
            )
        yield out


_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
"""What ``str.splitlines`` ends a line at."""


def _text_rows_of_chunks(chunks: Iterable[bytes]) -> Iterator[Row]:
    """:func:`_text_rows` of a text arriving in chunks, with the same line numbers."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    pending = ""
    line = 0
    for chunk in chunks:
        pieces, pending = _complete_lines(pending + decoder.decode(chunk))
        for raw in pieces:
            line += 1
            yield from _text_row(line, raw)
    for raw in (pending + decoder.decode(b"", final=True)).splitlines():
        line += 1
        yield from _text_row(line, raw)


def _complete_lines(text: str) -> tuple[list[str], str]:
    """The whole lines of ``text``, and the rest: a cut line, or a ``\r`` whose ``\n``
    may come in the next chunk."""
    pieces = text.splitlines(keepends=True)
    if pieces and (pieces[-1][-1] not in _LINE_BREAKS or pieces[-1].endswith("\r")):
        return pieces[:-1], pieces[-1]
    return pieces, ""


def _text_row(line: int, raw: str) -> Iterator[Row]:
    stripped = raw.strip()
    if stripped and not stripped.startswith("#"):
        yield check_url(line, stripped)


def check_url(line: int, raw: str, caption: str | None = None) -> Row:
    """A :class:`UrlEntry` for an absolute http(s) URL, else a :class:`BadRow`."""
    url = raw.strip()
    if not url:
        return BadRow(line, raw, "missing_url", "the row has no URL")
    try:
        parsed = URL(url)
    except ValueError as error:
        return BadRow(line, raw, "bad_url", f"not a URL: {error}")
    if parsed.scheme.lower() not in ALLOWED_SCHEMES or not parsed.host:
        return BadRow(line, raw, "bad_url", "not an absolute http(s) URL")
    return UrlEntry(line, url, caption or None)


def _gunzip(data: bytes, key: str, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes)
    except zlib.error as error:
        raise UrlListError(f"{key!r}: gzip data is corrupt ({error})") from None
    if inflater.unconsumed_tail:
        raise UrlListError(f"{key!r}: more than {max_bytes} bytes once decompressed")
    return out


def _text_rows(text: str) -> Iterator[Row]:
    for line, raw in enumerate(text.splitlines(), start=1):
        yield from _text_row(line, raw)


def _jsonl_rows(text: str, url_column: str, caption_column: str) -> Iterator[Row]:
    for line, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        try:
            record = json.loads(stripped)
        except json.JSONDecodeError as error:
            yield BadRow(line, raw, "bad_row", f"not JSON: {error}")
            continue
        if not isinstance(record, dict):
            yield BadRow(line, raw, "bad_row", "a JSON line must be an object")
            continue
        url = record.get(url_column)
        if not isinstance(url, str):
            yield BadRow(line, raw, "missing_url", f"no string field {url_column!r}")
            continue
        caption = record.get(caption_column)
        yield check_url(line, url, caption if isinstance(caption, str) else None)


def _csv_rows(
    text: str, key: str, delimiter: str, url_column: str, caption_column: str
) -> Iterator[Row]:
    lines = io.StringIO(text, newline="")
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    while header is None:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise UrlListError(f"{key!r}: unreadable header ({error})") from None
        if any(cell.strip() for cell in row):
            header = [cell.strip().lower() for cell in row]
    url_index = _column(header, url_column)
    if url_index is None:
        raise UrlListError(
            f"{key!r}: no {url_column!r} column (columns: {header}); name the column "
            "with PIXSEARCH_DOWNLOAD_URL_COLUMN"
        )
    caption_index = _column(header, caption_column)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield BadRow(reader.line_num, "", "bad_row", f"CSV error: {error}")
            continue
        if not any(cell.strip() for cell in row):
            continue
        raw = delimiter.join(row)
        if url_index >= len(row):
            yield BadRow(reader.line_num, raw, "missing_url", f"row has no {url_column!r} field")
            continue
        has_caption = caption_index is not None and caption_index < len(row)
        caption = row[caption_index].strip() if has_caption else None
        yield check_url(reader.line_num, row[url_index], caption)


def _column(header: list[str], name: str) -> int | None:
    return header.index(name.lower()) if name.lower() in header else None


def _parquet_rows(data: bytes, key: str, url_column: str, caption_column: str) -> Iterator[Row]:
    import pyarrow as pa  # only parquet lists pay for importing it
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as error:
        raise UrlListError(f"{key!r}: not a readable parquet file ({error})") from None
    names = {name.lower(): name for name in table.column_names}
    if url_column.lower() not in names:
        raise UrlListError(
            f"{key!r}: no {url_column!r} column (columns: {table.column_names}); name the "
            "column with PIXSEARCH_DOWNLOAD_URL_COLUMN"
        )
    urls = table.column(names[url_column.lower()]).to_pylist()
    captions = (
        table.column(names[caption_column.lower()]).to_pylist()
        if caption_column.lower() in names
        else [None] * len(urls)
    )
    for row, (url, caption) in enumerate(zip(urls, captions, strict=True), start=1):
        if not isinstance(url, str):
            yield BadRow(row, repr(url), "missing_url", f"{url_column!r} is {url!r}")
            continue
        yield check_url(row, url, caption if isinstance(caption, str) else None)
