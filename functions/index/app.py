"""Index function: new shards and image removals -> FAISS index (logic in ``pixsearch.index``)."""

from pixsearch.index.handler import lambda_handler as handle
from pixsearch.logs import handler_logger

lambda_handler = handler_logger("index").inject_lambda_context(handle)
