"""Index function: new shards and image removals -> FAISS index (logic in ``pixsearch.index``)."""

from pixsearch.index.handler import lambda_handler

__all__ = ["lambda_handler"]
