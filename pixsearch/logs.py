"""Logging: structured JSON from handlers, readable lines on the command line."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers


def handler_logger(service: str) -> Logger:
    """JSON logs for a Lambda entry point (level from ``POWERTOOLS_LOG_LEVEL``).

    pixsearch's own loggers get the same JSON handler, so every line a function
    writes carries the service and, inside ``inject_lambda_context``, the request id.
    """
    logger = Logger(service=f"pixsearch-{service}")
    logging.getLogger("pixsearch")
    copy_config_to_registered_loggers(source_logger=logger, include={"pixsearch"})
    return logger


def configure_cli(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
