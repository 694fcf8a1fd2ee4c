"""Download function: URL lists in ``urls/`` -> images in ``images/`` + URL maps in ``maps/``."""

from pixsearch.download.handler import lambda_handler

__all__ = ["lambda_handler"]
