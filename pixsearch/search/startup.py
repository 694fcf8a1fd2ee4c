"""A search process's start-up, in cold-start order (the Lambda function and the local API).

The text encoder starts loading first, then the search service is imported and
starts loading the index, then the caller imports its web framework: each later
import overlaps the earlier steps' I/O and onnxruntime's session build, which run
without the GIL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixsearch.config import Settings
from pixsearch.inference import preload
from pixsearch.search.arenas import limit_malloc_arenas

if TYPE_CHECKING:
    from pixsearch.search.service import SearchService


def start_search_service(settings: Settings) -> SearchService:
    """A search service warming up in the background, its text encoder loading."""
    limit_malloc_arenas(settings.api_malloc_arenas)  # before the warm-up and worker threads
    preload(settings, "text")
    from pixsearch.search.service import SearchService

    service = SearchService(settings)
    service.start_warmup()
    return service
