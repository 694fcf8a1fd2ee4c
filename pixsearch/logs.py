"""Logging: structured JSON from handlers, readable lines on the command line."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger


def handler_logger(service: str) -> Logger:
    """A Powertools JSON logger for a Lambda handler (level from ``POWERTOOLS_LOG_LEVEL``)."""
    return Logger(service=f"pixsearch-{service}")


def configure_cli(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
