"""Lambda entry point: the search API behind API Gateway (HTTP API, payload format 2.0)."""

import logging

from mangum import Mangum

from pixsearch.search.fastapi_app import create_fastapi_app

logging.getLogger("pixsearch").setLevel(logging.INFO)  # cold-start timings reach CloudWatch
app = create_fastapi_app()
handler = Mangum(app, lifespan="off")
