"""The download stage: URL lists in the bucket -> validated, content-addressed images + URL maps.

:func:`fetch_image` is the package's public door for other packages (the
search API's ``image_url`` queries): the stage's SSRF-safe fetcher for one URL.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pixsearch.download.outcome import DownloadFailure

if TYPE_CHECKING:
    from pixsearch.config import Settings

__all__ = ["DownloadFailure", "fetch_image"]


def fetch_image(url: str, settings: Settings) -> tuple[bytes, str]:
    """The body and content type at ``url``, fetched as the download stage fetches.

    Address checks, redirects, byte and time caps and retries follow
    ``settings``; anything else is a :class:`DownloadFailure` with its reason.
    """
    from pixsearch.download.fetch import Fetcher  # aiohttp only for callers that fetch

    async def fetch() -> tuple[bytes, str]:
        async with Fetcher(settings) as fetcher:
            fetched = await fetcher.fetch(url)
        return fetched.body, fetched.content_type

    return asyncio.run(fetch())
