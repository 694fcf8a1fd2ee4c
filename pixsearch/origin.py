"""Where an image came from, carried as the image object's S3 user metadata.

The download stage writes it with the image (first writer wins, like the image
itself); the embed stage reads it back into each shard row, so the index knows
every row's source URL, list, fetch time and caption without reading URL maps.
S3 user metadata is ASCII and at most 2 KB in all: the source URL is stored as
its ASCII form (IDNA host, percent-encoded path), list name and caption are
percent-encoded, and the caption is shortened to fit (a URL too long to fit is
left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from yarl import URL

SOURCE_URL = "source-url"
LIST_NAME = "list-name"
FETCHED_AT = "fetched-at"
CAPTION = "caption"

METADATA_MAX_BYTES = 1900  # S3 allows 2 KB of user metadata, names included


@dataclass(frozen=True)
class ImageOrigin:
    source_url: str | None = None
    list_name: str | None = None
    fetched_at: str | None = None  # ISO 8601, UTC
    caption: str | None = None

    def to_metadata(self) -> dict[str, str]:
        """The metadata to store with the image: encoded, within S3's size limit."""
        metadata: dict[str, str] = {}
        for name, encoded in (
            (SOURCE_URL, str(URL(self.source_url)) if self.source_url else None),
            (LIST_NAME, quote(self.list_name) if self.list_name else None),
            (FETCHED_AT, self.fetched_at),
        ):
            if encoded and _size(metadata) + len(name) + len(encoded) <= METADATA_MAX_BYTES:
                metadata[name] = encoded
        if self.caption:
            room = METADATA_MAX_BYTES - _size(metadata) - len(CAPTION)
            caption = self.caption
            while caption and len(quote(caption)) > room:
                caption = caption[: max(0, min(len(caption) - 1, room // 3))]
            if caption:
                metadata[CAPTION] = quote(caption)
        return metadata

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ImageOrigin:
        def value(name: str) -> str | None:
            raw = metadata.get(name)
            return unquote(raw) if raw else None

        # The source URL stays as stored: already a valid ASCII URL (IDNA, percent-encoded).
        return cls(
            metadata.get(SOURCE_URL) or None,
            value(LIST_NAME),
            metadata.get(FETCHED_AT),
            value(CAPTION),
        )


def source_domain(url: str | None) -> str | None:
    """The host an image was fetched from, lower case, without ``www.``; None if unknown."""
    if not url:
        return None
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    return host.removeprefix("www.") or None


def _size(metadata: dict[str, str]) -> int:
    return sum(len(name) + len(value) for name, value in metadata.items())
