"""Where validated images go: the bucket (content-addressed, written once) or nowhere."""

from __future__ import annotations

from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from pixsearch import layout, recent_images
from pixsearch.download.outcome import DownloadFailure, Status
from pixsearch.images import ValidImage
from pixsearch.origin import SOURCE_URL as SOURCE_URL_METADATA
from pixsearch.origin import ImageOrigin
from pixsearch.storage import ConflictError, ObjectStore

__all__ = ["SOURCE_URL_METADATA", "BucketSink", "ImageSink", "NullSink", "source_url_metadata"]


class ImageSink(Protocol):
    def store(self, image: ValidImage, origin: ImageOrigin) -> tuple[str, Status]:
        """Keep ``image``; returns its key and ``ok`` or ``duplicate``. Thread-safe."""
        ...


class BucketSink:
    """``images/{sha[:2]}/{sha}.{ext}`` via ``put_if_absent``: the first writer wins.

    Losing the race (or finding the image already stored) is a duplicate, not an
    error, so the same image from many URLs or many lists is stored once, with
    the origin (URL, list, caption) that brought it first. A stored image is also
    handed to an embed stage running in this process (:mod:`pixsearch.recent_images`).
    """

    def __init__(self, store: ObjectStore) -> None:
        self.objects = store

    def store(self, image: ValidImage, origin: ImageOrigin) -> tuple[str, Status]:
        key = layout.image_key(image.sha256, image.ext)
        metadata = origin.to_metadata()
        try:
            etag = self.objects.put_if_absent(
                key, image.data, content_type=image.content_type, metadata=metadata
            )
        except ConflictError:
            return key, "duplicate"
        except (BotoCoreError, ClientError) as error:
            raise DownloadFailure("storage", f"could not store {key}: {error}") from None
        recent_images.remember(self.objects.bucket, key, image, etag, metadata)
        return key, "ok"


class NullSink:
    """Discards images (benchmarks of the downloader alone)."""

    def store(self, image: ValidImage, origin: ImageOrigin) -> tuple[str, Status]:
        return layout.image_key(image.sha256, image.ext), "ok"


def source_url_metadata(url: str) -> dict[str, str]:
    """Metadata carrying only ``url`` (images stored without a list, e.g. by benchmarks)."""
    return ImageOrigin(source_url=url).to_metadata()
