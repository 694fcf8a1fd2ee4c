"""Embed function: ``images/`` events -> embedding shards (logic in ``pixsearch.embed``)."""

from pixsearch.embed.handler import lambda_handler as handle
from pixsearch.logs import handler_logger

lambda_handler = handler_logger("embed").inject_lambda_context(handle)
