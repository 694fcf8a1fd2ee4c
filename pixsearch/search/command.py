"""``pixsearch search``: the same SearchService as the HTTP API, printed as a table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from pixsearch.config import Settings, get_settings
from pixsearch.search.errors import SearchError
from pixsearch.search.requests import DEFAULT_K, SearchRequest, build_request
from pixsearch.search.responses import SearchResponse
from pixsearch.search.service import SearchService
from pixsearch.webui.api_client import ApiError, SearchApi
from pixsearch.webui.sigv4 import NoCredentials


def run(
    text: str | None = None,
    image: Path | None = None,
    k: int = DEFAULT_K,
    min_score: float | None = None,
    settings: Settings | None = None,
    api_url: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Search by ``text`` or by the image file ``image``; print the results. Exit status.

    In this process by default; through the search API at ``api_url`` when given.
    """
    settings = settings or get_settings()
    out, err = out or sys.stdout, err or sys.stderr
    try:
        image_bytes = image.read_bytes() if image is not None else None
    except OSError as error:
        print(f"error: cannot read {image}: {error.strerror or error}", file=err)
        return 2
    try:
        request = build_request(
            settings, k=k, min_score=min_score, text=text, image_bytes=image_bytes
        )
        if api_url:
            response = _ask_api(api_url, settings, request, image)
        else:
            response = SearchService(settings).search(request)
    except SearchError as error:
        print(f"error ({error.code}): {error.message}", file=err)
        return 2 if error.status < 500 else 1
    except ApiError as error:
        print(f"error ({error.code}): {error.message}", file=err)
        return 2 if error.status is not None and error.status < 500 else 1
    except NoCredentials as error:
        print(f"error: {error}", file=err)
        return 2
    out.write(format_table(response))
    return 0


def _ask_api(
    api_url: str, settings: Settings, request: SearchRequest, image: Path | None
) -> SearchResponse:
    """The same query through a search API (signed when ``PIXSEARCH_API_AUTH=iam``)."""
    api = SearchApi.from_settings(api_url, settings)
    if request.text is not None:
        return api.search_text(request.text, request.k, request.min_score)
    assert request.image_bytes is not None and image is not None
    return api.search_upload(request.image_bytes, image.name, request.k, request.min_score)


def format_table(response: SearchResponse) -> str:
    """Score, key and source URL, one result a line, under a header naming index and timing."""
    rows = [("score", "key", "source_url")] + [
        (f"{result.score:.4f}", result.key, result.source_url or "-") for result in response.results
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = [
        f"{response.model}  index v{response.index_version}  "
        f"{len(response.results)} results  {response.took_ms:.1f} ms"
    ]
    lines += [f"{score:>{widths[0]}}  {key:<{widths[1]}}  {url}" for score, key, url in rows]
    return "\n".join(lines) + "\n"
