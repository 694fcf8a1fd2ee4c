"""The visibility heartbeat against a real moto server: extend while in flight, never forever."""

from __future__ import annotations

import time

from pixsearch.runtime.visibility import InFlight, extend
from pixsearch.storage import client


def received(queue_url: str, *bodies: str) -> dict[str, str]:
    """``bodies`` sent to an emptied queue and received with a 1 s visibility: receipt by body."""
    sqs = client("sqs")
    sqs.purge_queue(QueueUrl=queue_url)
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    messages: list[dict] = []
    while len(messages) < len(bodies):
        messages += sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=1
        ).get("Messages", [])
    return {m["Body"]: m["ReceiptHandle"] for m in messages}


def visible_bodies(queue_url: str) -> list[str]:
    response = client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
    )
    return sorted(m["Body"] for m in response.get("Messages", []))


def test_a_record_past_its_deadline_is_no_longer_extended(settings, queues):
    url = queues["download"].queue
    sqs = client("sqs")
    messages = received(url, "hung", "working")
    in_flight = InFlight()
    in_flight.add(url, [messages["hung"]], deadline=time.monotonic() - 1)
    in_flight.add(url, [messages["working"]], deadline=time.monotonic() + 60)

    extend(sqs, in_flight, visibility_timeout_s=30)

    assert in_flight.live() == {url: [messages["working"]]}
    time.sleep(1.5)
    assert visible_bodies(url) == ["hung"]


def test_handles_that_are_gone_are_dropped_and_the_rest_extended(settings, queues):
    url = queues["embed"].queue
    sqs = client("sqs")
    messages = received(url, "deleted elsewhere", "still working")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages["deleted elsewhere"])
    in_flight = InFlight()
    in_flight.add(url, list(messages.values()), deadline=time.monotonic() + 60)

    extend(sqs, in_flight, visibility_timeout_s=30)

    assert in_flight.live() == {url: [messages["still working"]]}
    time.sleep(1.5)
    assert visible_bodies(url) == []
