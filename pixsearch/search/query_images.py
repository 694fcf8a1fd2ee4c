"""Query images: an uploaded file, an image already in the bucket, or a URL to fetch.

Every query image is decoded once, by the same checks an ingested image passes
(:mod:`pixsearch.images`); a URL is fetched through the download stage's
SSRF-safe fetcher. Whatever the bytes make the decoder do is the caller's
fault (422), and a store that cannot serve a key is a 503 (or 400 for a key it
refuses), never a 500.
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image

from pixsearch import images
from pixsearch.config import Settings
from pixsearch.download import DownloadFailure, fetch_image
from pixsearch.search.errors import BadRequest, InvalidImage, NotFound, PayloadTooLarge, Unavailable
from pixsearch.search.requests import SearchRequest
from pixsearch.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)


class QueryImages:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        # A query waits for its image: cap time and bytes as for an upload, retry once; only
        # its own allow-list opens non-public addresses.
        self.fetch_settings = settings.model_copy(
            update={
                "download_allow": settings.search_image_url_allow,
                "download_max_bytes": settings.search_upload_max_bytes,
                "download_total_timeout_s": min(
                    settings.download_total_timeout_s, settings.search_fetch_timeout_s
                ),
                "download_retries": min(settings.download_retries, 1),
            }
        )

    def load(
        self, request: SearchRequest, resized_to: tuple[int, int] | None = None
    ) -> Image.Image:
        """The query image of an image request, or a 4xx :class:`SearchError` saying why not.

        ``resized_to`` is the model's input size: the image is decoded as the embed
        stage decodes it (:func:`pixsearch.images.decode`), so an indexed image
        queried by itself gives its own vector.
        """
        if request.image_key is not None:
            data = self._stored(request.image_key)
            return self._decoded(data, f"image {request.image_key!r}", "", resized_to)
        if request.image_url is not None:
            data, content_type = self._fetch(request.image_url)
            return self._decoded(data, f"image at {request.image_url}", content_type, resized_to)
        if request.image_bytes is not None:
            return self._decoded(request.image_bytes, "uploaded image", "", resized_to)
        raise ValueError(f"{request.kind} request has no image")

    def _stored(self, key: str) -> bytes:
        try:
            return self.store.get(key)
        except ObjectNotFound:
            raise NotFound(f"no image {key!r} in the bucket", code="image_not_found") from None
        except ClientError as error:
            raise _storage_error(key, error) from None
        except BotoCoreError as error:
            log.warning("reading %s failed: %s", key, error)
            raise Unavailable(
                f"the object store could not be reached to read {key!r}; try again",
                code="storage_unavailable",
            ) from None

    def _decoded(
        self, data: bytes, what: str, content_type: str, resized_to: tuple[int, int] | None
    ) -> Image.Image:
        try:
            return images.decode(
                data,
                max_pixels=self.settings.download_max_pixels,
                content_type=content_type,
                resized_to=resized_to,
            ).image
        except images.InvalidImage as invalid:
            raise InvalidImage(
                f"{what} is not usable ({invalid.reason}): {invalid.message}"
            ) from None
        except Exception as error:  # noqa: BLE001 - any decoder fault on foreign bytes is theirs
            raise _undecodable(what, error) from None

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


def _undecodable(what: str, error: Exception) -> InvalidImage:
    log.warning("%s made the decoder fail", what, exc_info=error)
    return InvalidImage(f"{what} cannot be decoded ({type(error).__name__}: {error})")


def _storage_error(key: str, error: ClientError) -> BadRequest | Unavailable:
    """A refused read of ``key``: the key's fault (400) or the store's (503)."""
    code = str(error.response.get("Error", {}).get("Code", "")) or "unknown"
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    log.warning("reading %s failed: %s (HTTP %s)", key, code, status)
    if 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
        return BadRequest(
            f"the object store refused image_key {key!r} ({code})", code="invalid_image_key"
        )
    return Unavailable(
        f"the object store could not serve {key!r} ({code}); try again",
        code="storage_unavailable",
    )
