"""Query images: an uploaded file, an image already in the bucket, or a URL to fetch.

Every query image is decoded once, by the same checks an ingested image passes
(:mod:`pixsearch.images`); a URL is fetched through the download stage's
SSRF-safe fetcher.
"""

from __future__ import annotations

from PIL import Image

from pixsearch import images
from pixsearch.config import Settings
from pixsearch.download import DownloadFailure, fetch_image
from pixsearch.search.errors import InvalidImage, NotFound, PayloadTooLarge
from pixsearch.search.requests import SearchRequest
from pixsearch.storage import ObjectNotFound, ObjectStore


class QueryImages:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        # A query waits for its image: cap time and bytes as for an upload, retry once.
        self.fetch_settings = settings.model_copy(
            update={
                "download_max_bytes": settings.search_upload_max_bytes,
                "download_total_timeout_s": min(
                    settings.download_total_timeout_s, settings.search_fetch_timeout_s
                ),
                "download_retries": min(settings.download_retries, 1),
            }
        )

    def load(self, request: SearchRequest) -> Image.Image:
        """The query image of an image request, or a 4xx :class:`SearchError` saying why not."""
        if request.image_key is not None:
            return self._decoded(self._stored(request.image_key), f"image {request.image_key!r}")
        if request.image_url is not None:
            data, content_type = self._fetch(request.image_url)
            return self._decoded(data, f"image at {request.image_url}", content_type)
        if request.image_bytes is not None:
            return self._decoded(request.image_bytes, "uploaded image")
        raise ValueError(f"{request.kind} request has no image")

    def _stored(self, key: str) -> bytes:
        try:
            return self.store.get(key)
        except ObjectNotFound:
            raise NotFound(f"no image {key!r} in the bucket", code="image_not_found") from None

    def _decoded(self, data: bytes, what: str, content_type: str = "") -> Image.Image:
        try:
            return images.decode(
                data, max_pixels=self.settings.download_max_pixels, content_type=content_type
            )
        except images.InvalidImage as invalid:
            raise InvalidImage(
                f"{what} is not usable ({invalid.reason}): {invalid.message}"
            ) from None

    def _fetch(self, url: str) -> tuple[bytes, str]:
        try:
            return fetch_image(url, self.fetch_settings)
        except DownloadFailure as failure:
            if failure.reason == "too_large":
                raise PayloadTooLarge(
                    f"image at {url} is over the {self.fetch_settings.download_max_bytes}-byte "
                    "limit",
                    code="upload_too_large",
                ) from None
            raise InvalidImage(
                f"cannot fetch {url} ({failure.reason}): {failure.message}",
                code="image_fetch_failed",
            ) from None
