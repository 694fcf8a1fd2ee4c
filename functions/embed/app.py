"""Embed function: ``images/`` events -> embedding shards (logic in ``pixsearch.embed``)."""

from pixsearch.embed.handler import lambda_handler

__all__ = ["lambda_handler"]
