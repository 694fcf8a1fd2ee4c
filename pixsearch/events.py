"""SQS batches of S3 event notifications -> object references, with partial batch failure.

Lambda's SQS event source mapping hands a function a batch of messages; each
message body here is an S3 event notification. A handler turns the batch into
:class:`ObjectEvent` values, does its work, and answers ``batchItemFailures`` so
that one bad record never fails its neighbours. That response contract is
Powertools' ``BatchProcessor``; this module only adds the S3 parsing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

TEST_EVENT = "s3:TestEvent"

log = logging.getLogger(__name__)

_listener = threading.local()


def encode_key(key: str) -> str:
    """``key`` as S3 writes it into a notification: URL-encoded, ``+`` for a space, ``/`` kept.

    (moto also escapes ``/`` as ``%2F``; :func:`parse_record` decodes both.)
    """
    return quote_plus(key, safe="/")


class EventParseError(ValueError):
    """An SQS record whose body is not a usable S3 event notification."""


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 object event, carried by the SQS message ``message_id``."""

    message_id: str
    bucket: str
    key: str
    event_name: str
    size: int | None = None
    etag: str | None = None

    @property
    def is_removal(self) -> bool:
        return self.event_name.startswith("ObjectRemoved")

    @property
    def is_creation(self) -> bool:
        return self.event_name.startswith("ObjectCreated")


def parse_record(record: SQSRecord) -> list[ObjectEvent]:
    """The object events in one SQS record; ``[]`` for ``s3:TestEvent``.

    Raises :class:`EventParseError` with a precise reason for anything else.
    """
    try:
        body = json.loads(record.body)
    except (TypeError, json.JSONDecodeError) as error:
        raise EventParseError(f"message {record.message_id}: body is not JSON ({error})") from None
    if not isinstance(body, dict):
        raise EventParseError(f"message {record.message_id}: body is not a JSON object")
    if body.get("Event") == TEST_EVENT:
        return []
    if not isinstance(body.get("Records"), list) or not body["Records"]:
        raise EventParseError(
            f"message {record.message_id}: not an S3 event notification (no 'Records' list)"
        )
    events = []
    for position, s3_record in enumerate(S3Event(body).records):
        try:
            event_name = s3_record.event_name.removeprefix("s3:")
            s3 = s3_record.s3
            raw_size = s3.get_object.raw_event.get("size")
            events.append(
                ObjectEvent(
                    message_id=record.message_id,
                    bucket=s3.bucket.name,
                    key=unquote_plus(s3.get_object.key),
                    event_name=event_name,
                    size=int(raw_size) if raw_size is not None else None,
                    etag=s3.get_object.etag.strip('"') or None,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise EventParseError(
                f"message {record.message_id}: S3 record {position} is missing or has a bad "
                f"field ({type(error).__name__}: {error})"
            ) from None
        if not (event_name.startswith("ObjectCreated") or event_name.startswith("ObjectRemoved")):
            raise EventParseError(
                f"message {record.message_id}: unsupported S3 event {s3_record.event_name!r}"
            )
    return events


BatchHandler = Callable[[Sequence[ObjectEvent]], Mapping[str, BaseException]]
"""Does a stage's work for a batch; returns the failures by SQS message id."""


def process_batch(event: dict[str, Any], context: Any, handle: BatchHandler) -> dict[str, Any]:
    """Parse an SQS event of S3 notifications, call ``handle`` once, answer partial failures.

    Records that do not parse fail alone; ``handle`` sees every event of the
    records that did, in delivery order, and names the message ids that failed.
    """
    parsed: dict[str, list[ObjectEvent]] = {}
    parse_errors: dict[str, EventParseError] = {}
    for raw in event.get("Records") or []:
        record = SQSRecord(raw)
        try:
            parsed[record.message_id] = parse_record(record)
        except EventParseError as error:
            parse_errors[record.message_id] = error
    object_events = [item for items in parsed.values() for item in items]
    failures: Mapping[str, BaseException] = handle(object_events) if object_events else {}

    def settle(record: SQSRecord) -> None:
        error = parse_errors.get(record.message_id) or failures.get(record.message_id)
        if error is not None:
            raise error

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=settle, processor=processor, context=context
    )
    reasons = {mid: f"{type(e).__name__}: {e}" for mid, e in {**failures, **parse_errors}.items()}
    sink = getattr(_listener, "reasons", None)
    if sink is not None:
        sink.update(reasons)
    log.info(
        "batch of %d records: %d object events, %d failed",
        len(event.get("Records") or []),
        len(object_events),
        len(response.get("batchItemFailures", [])),
        extra={"failures": reasons},
    )
    return response


@contextmanager
def failure_reasons() -> Iterator[dict[str, str]]:
    """Collect why :func:`process_batch` fails records in this thread, by message id.

    Lambda only learns *which* records failed; the local runtime also notes *why*,
    so ``pixsearch dlq list`` can say it.
    """
    reasons: dict[str, str] = {}
    _listener.reasons = reasons
    try:
        yield reasons
    finally:
        _listener.reasons = None


def each(handle_one: Callable[[ObjectEvent], None]) -> BatchHandler:
    """A :data:`BatchHandler` that handles events one by one; an exception fails its record."""

    def handle(events: Sequence[ObjectEvent]) -> Mapping[str, BaseException]:
        failures: dict[str, BaseException] = {}
        for object_event in events:
            if object_event.message_id in failures:
                continue
            try:
                handle_one(object_event)
            except Exception as error:  # noqa: BLE001 - the record fails, its neighbours don't
                failures[object_event.message_id] = error
        return failures

    return handle
