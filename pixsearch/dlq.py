"""Dead-lettered messages: list them and send them back to their stage's queue.

``list_dead_letters`` peeks at every stage's dead-letter queue (messages are
received, then made visible again at once) and says per message which object
keys it carries, how often it was delivered and, where the local runtime noted
it, why it first failed. ``redrive`` moves them back: with SQS's own
``StartMessageMoveTask`` where the endpoint has it (AWS), otherwise by
receive -> send -> delete, where a message is sent at most once per run even
when a delete has to be retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError

from pixsearch import topology
from pixsearch.config import Settings
from pixsearch.events import EventParseError, parse_record
from pixsearch.runtime.failures import FailureJournal
from pixsearch.runtime.visibility import BATCH_LIMIT
from pixsearch.storage import client

log = logging.getLogger(__name__)

_PEEK_S = 30  # long enough to list a queue without seeing a message twice
_SEND_S = 60  # a message being moved stays hidden this long if the move is cut short


@dataclass(frozen=True)
class DeadLetter:
    stage: str
    message_id: str
    object_keys: tuple[str, ...]
    receive_count: int  # deliveries to the stage before the message was dead-lettered
    first_failure: str | None  # None when no local runtime noted it (see the function's logs)
    body_excerpt: str


@dataclass(frozen=True)
class RedriveResult:
    stage: str
    method: str  # "move task" (SQS moves them, asynchronously) or "resend"
    moved: int  # messages sent back (resend) or in the DLQ when the task started
    task_handle: str | None = None


def list_dead_letters(
    settings: Settings, stage: str | None = None, *, limit: int = 1000
) -> list[DeadLetter]:
    """Up to ``limit`` dead-lettered messages per stage, left in place."""
    sqs = client("sqs", settings.region)
    notes = FailureJournal(settings.data_dir).read()
    letters: list[DeadLetter] = []
    for name, urls in _stage_queues(sqs, settings, stage).items():
        messages = _receive_all(sqs, urls.dlq, limit)
        _make_visible(sqs, urls.dlq, [m["ReceiptHandle"] for m in messages])
        for message in messages:
            note = notes.get(message["MessageId"])
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            letters.append(
                DeadLetter(
                    stage=name,
                    message_id=message["MessageId"],
                    object_keys=_object_keys(message),
                    receive_count=max(0, count - 1),  # less this look
                    first_failure=note.reason if note else None,
                    body_excerpt=message["Body"][:200],
                )
            )
    return letters


def redrive(settings: Settings, stage: str | None = None) -> list[RedriveResult]:
    """Send every stage's (or ``stage``'s) dead letters back to the stage's queue."""
    sqs = client("sqs", settings.region)
    results = []
    for name, urls in _stage_queues(sqs, settings, stage).items():
        attributes = sqs.get_queue_attributes(
            QueueUrl=urls.dlq, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"]
        )["Attributes"]
        waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
        if not waiting:
            results.append(RedriveResult(name, "nothing to move", 0))
            continue
        probe = client("sqs", settings.region, retries=0)
        handle = _start_move_task(probe, attributes["QueueArn"], urls.queue)
        if handle is not None:
            results.append(RedriveResult(name, "move task", waiting, handle))
        else:
            results.append(RedriveResult(name, "resend", _resend(sqs, urls)))
    return results


def render_redrive(results: list[RedriveResult]) -> str:
    """One line per stage: what was sent back and how."""
    lines = []
    for result in results:
        if result.method == "move task":
            lines.append(f"{result.stage}: moving {result.moved} message(s) (SQS move task)")
        elif result.method == "resend":
            lines.append(f"{result.stage}: sent {result.moved} message(s) back")
        else:
            lines.append(f"{result.stage}: no dead letters")
    return "\n".join(lines)


def render(letters: list[DeadLetter]) -> str:
    """The dead letters as a small table for the terminal."""
    if not letters:
        return "no dead-lettered messages"
    lines = [f"{'stage':<9} {'receives':>8}  {'object key(s)':<40}  first failure"]
    for letter in letters:
        keys = ", ".join(letter.object_keys) or f"(body: {letter.body_excerpt[:36]})"
        reason = letter.first_failure or "unknown (see the function's logs)"
        lines.append(f"{letter.stage:<9} {letter.receive_count:>8}  {keys:<40}  {reason}")
    return "\n".join(lines)


def _stage_queues(sqs: Any, settings: Settings, stage: str | None) -> dict[str, topology.QueueUrls]:
    if stage is not None:
        topology.stage(stage)  # an unknown name fails with the list of stages
    urls = topology.queue_urls(sqs, settings)
    return {name: pair for name, pair in urls.items() if stage in (None, name)}


def _receive_all(sqs: Any, url: str, limit: int, visibility_s: int = _PEEK_S) -> list[dict]:
    messages: list[dict] = []
    while len(messages) < limit:
        batch = _receive(sqs, url, min(BATCH_LIMIT, limit - len(messages)), visibility_s)
        if not batch:
            break
        messages.extend(batch)
    return messages


def _receive(sqs: Any, url: str, count: int, visibility_s: int) -> list[dict]:
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=count,
        VisibilityTimeout=visibility_s,
        WaitTimeSeconds=0,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def _make_visible(sqs: Any, url: str, receipts: list[str]) -> None:
    for start in range(0, len(receipts), BATCH_LIMIT):
        chunk = receipts[start : start + BATCH_LIMIT]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                for i, r in enumerate(chunk)
            ],
        )


def _object_keys(message: dict[str, Any]) -> tuple[str, ...]:
    record = SQSRecord({"messageId": message["MessageId"], "body": message["Body"]})
    try:
        return tuple(event.key for event in parse_record(record))
    except EventParseError:
        return ()


def _start_move_task(sqs: Any, dlq_arn: str, queue_url: str) -> str | None:
    """The task handle of SQS's own redrive, or None where the endpoint lacks it."""
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    try:
        response = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=queue_arn)
    except ClientError as error:
        log.info("StartMessageMoveTask unavailable here (%s); resending instead", error)
        return None
    return response["TaskHandle"]


def _resend(sqs: Any, urls: topology.QueueUrls) -> int:
    """Receive -> send to the stage queue -> delete, each message sent once."""
    sent: set[str] = set()
    while batch := _receive(sqs, urls.dlq, BATCH_LIMIT, _SEND_S):
        fresh = [m for m in batch if m["MessageId"] not in sent]
        if fresh:
            response = sqs.send_message_batch(
                QueueUrl=urls.queue,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": m["Body"],
                        **(
                            {"MessageAttributes": m["MessageAttributes"]}
                            if m.get("MessageAttributes")
                            else {}
                        ),
                    }
                    for i, m in enumerate(fresh)
                ],
            )
            for failure in response.get("Failed") or []:
                log.warning("could not send a dead letter back: %s", failure.get("Message"))
            delivered = {fresh[int(ok["Id"])]["MessageId"] for ok in response.get("Successful", [])}
            sent |= delivered
        done = [m["ReceiptHandle"] for m in batch if m["MessageId"] in sent]
        for start in range(0, len(done), BATCH_LIMIT):
            sqs.delete_message_batch(
                QueueUrl=urls.dlq,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r}
                    for i, r in enumerate(done[start : start + BATCH_LIMIT])
                ],
            )
        if not done:
            break  # nothing could be sent: leave the rest for the next redrive
    return len(sent)
