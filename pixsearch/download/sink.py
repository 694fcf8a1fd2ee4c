"""Where validated images go: the bucket (content-addressed, written once) or nowhere."""

from __future__ import annotations

from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError
from yarl import URL

from pixsearch import layout
from pixsearch.download.outcome import DownloadFailure, Status
from pixsearch.images import ValidImage
from pixsearch.storage import ConflictError, ObjectStore

SOURCE_URL_METADATA = "source-url"
"""Object metadata key holding the first source URL of an image (read by the embed stage)."""

_METADATA_MAX_CHARS = 1800  # S3 allows 2 KB of user metadata in all


class ImageSink(Protocol):
    def store(self, image: ValidImage, source_url: str) -> tuple[str, Status]:
        """Keep ``image``; returns its key and ``ok`` or ``duplicate``. Thread-safe."""
        ...


class BucketSink:
    """``images/{sha[:2]}/{sha}.{ext}`` via ``put_if_absent``: the first writer wins.

    Losing the race (or finding the image already stored) is a duplicate, not an
    error, so the same image from many URLs or many lists is stored once, with
    the URL that brought it first.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.objects = store

    def store(self, image: ValidImage, source_url: str) -> tuple[str, Status]:
        key = layout.image_key(image.sha256, image.ext)
        metadata = source_url_metadata(source_url)
        try:
            self.objects.put_if_absent(
                key, image.data, content_type=image.content_type, metadata=metadata
            )
        except ConflictError:
            return key, "duplicate"
        except (BotoCoreError, ClientError) as error:
            raise DownloadFailure("storage", f"could not store {key}: {error}") from None
        return key, "ok"


class NullSink:
    """Discards images (benchmarks of the downloader alone)."""

    def store(self, image: ValidImage, source_url: str) -> tuple[str, Status]:
        return layout.image_key(image.sha256, image.ext), "ok"


def source_url_metadata(url: str) -> dict[str, str]:
    """Metadata carrying ``url`` as ASCII (S3 metadata is ASCII); empty if it is too long."""
    encoded = str(URL(url))
    return {SOURCE_URL_METADATA: encoded} if len(encoded) <= _METADATA_MAX_CHARS else {}
