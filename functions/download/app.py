"""Download function: URL lists in ``urls/`` -> images in ``images/`` + URL maps in ``maps/``."""

from pixsearch.download.handler import lambda_handler as handle
from pixsearch.logs import handler_logger

lambda_handler = handler_logger("download").inject_lambda_context(handle)
