"""Lambda entry point: the search API behind API Gateway (HTTP API, payload format 2.0).

Cold start in the order of ``functions/search/local.py``: the text encoder starts
loading first, then the search service is imported and starts loading the index,
then FastAPI and Mangum are imported while both run (without the GIL) in the
background. All of it happens in Lambda's init phase, before the first event.
"""

import logging
from typing import Any

from pixsearch.config import get_settings
from pixsearch.inference import preload

logging.getLogger("pixsearch").setLevel(logging.INFO)  # cold-start timings reach CloudWatch


def _create_handler() -> tuple[Any, Any]:
    settings = get_settings()
    preload(settings, "text")
    from pixsearch.search.service import SearchService

    service = SearchService(settings)
    service.start_warmup()
    from mangum import Mangum

    from pixsearch.search.fastapi_app import create_fastapi_app

    fastapi_app = create_fastapi_app(service)
    return fastapi_app, Mangum(fastapi_app, lifespan="off")


app, handler = _create_handler()
