"""URL lists as the web app takes them: pasted lines or an uploaded file, stored under ``urls/``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.download.urllist import UrlEntry, UrlListError, parse_url_list
from pixsearch.storage import ConflictError, ObjectStore

UPLOAD_FORMATS = ("txt", "csv")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_CONTENT_TYPES = {"txt": "text/plain", "csv": "text/csv"}


class ListRejected(ValueError):
    """A list the app will not upload; the message says what to change."""


@dataclass(frozen=True)
class UploadedList:
    name: str
    key: str
    urls: int  # rows with a usable URL
    bad_rows: int  # rows the download stage will record as failed without fetching


def check_name(name: str) -> str:
    """The list name, stripped; :class:`ListRejected` unless it is key-safe."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise ListRejected(
            "a list name is 1 to 100 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit; got {name!r}"
        )
    return name


def pasted_list(text: str) -> bytes:
    """Pasted URLs (one per line) as a ``.txt`` list; :class:`ListRejected` if there are none."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ListRejected("paste at least one image URL, one per line")
    return ("\n".join(lines) + "\n").encode()


def upload_format(filename: str) -> str:
    """``urls.CSV`` -> ``csv``; :class:`ListRejected` for anything but ``.txt`` / ``.csv``."""
    ext = filename.rpartition(".")[2].lower() if "." in filename else ""
    if ext not in UPLOAD_FORMATS:
        raise ListRejected(
            f"{filename!r} is not a .txt or .csv file; upload one URL per line (.txt) "
            "or a CSV with a url column"
        )
    return ext


def upload_list(
    store: ObjectStore, settings: Settings, name: str, data: bytes, fmt: str
) -> UploadedList:
    """Store the list as ``urls/{name}.{fmt}``, which starts the pipeline on it.

    The list is parsed first, with the download stage's own parser and column
    settings, so a list that stage could not read is refused here with its reason.
    An existing list is never replaced: its URL map and progress belong to it.
    """
    name = check_name(name)
    key = f"{layout.URLS}{name}.{fmt}"
    try:
        rows = parse_url_list(
            data,
            key,
            url_column=settings.download_url_column,
            caption_column=settings.download_caption_column,
            max_bytes=settings.download_list_max_bytes,
        )
    except UrlListError as error:
        raise ListRejected(str(error)) from None
    urls = sum(isinstance(row, UrlEntry) for row in rows)
    if not urls:
        raise ListRejected("the list has no usable http(s) URL")
    # Each format is its own list; one name for two of them would only confuse people.
    existing = [
        other
        for other in (f"{layout.URLS}{name}.{ext}" for ext in UPLOAD_FORMATS)
        if store.head(other) is not None
    ]
    if existing:
        raise ListRejected(f"a list named {name!r} exists already ({existing[0]}); pick a new name")
    try:
        store.put_if_absent(key, data, content_type=_CONTENT_TYPES[fmt])
    except ConflictError:
        raise ListRejected(f"a list named {name!r} exists already; pick a new name") from None
    return UploadedList(name=layout.list_name(key), key=key, urls=urls, bad_rows=len(rows) - urls)
