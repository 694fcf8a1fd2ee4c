"""Lambda entry point: the search API behind API Gateway (HTTP API, payload format 2.0).

Cold start in the order of :mod:`pixsearch.search.startup`: FastAPI and Mangum are
imported while the text encoder and the index load in the background. All of it
happens in Lambda's init phase, before the first event.
"""

import logging
from typing import Any

from pixsearch.config import get_settings
from pixsearch.search.startup import start_search_service

logging.getLogger("pixsearch").setLevel(logging.INFO)  # cold-start timings reach CloudWatch


def _create_handler() -> tuple[Any, Any]:
    service = start_search_service(get_settings())
    from mangum import Mangum

    from pixsearch.search.fastapi_app import create_fastapi_app

    fastapi_app = create_fastapi_app(service)
    return fastapi_app, Mangum(fastapi_app, lifespan="off")


app, handler = _create_handler()
