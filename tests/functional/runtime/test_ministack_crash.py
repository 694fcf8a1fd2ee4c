"""MiniStack killed with SIGKILL keeps every queued message: sends, notifications, moves."""

from __future__ import annotations

import json
from collections import Counter

from pixsearch.runtime.ministack_queue_journal import JOURNAL
from pixsearch.storage import client
from tests.fixtures.aws import KeptEmulator, notification_keys, receive_all


def bodies(queue_url: str) -> Counter[str]:
    return Counter(m["Body"] for m in receive_all(queue_url, wait_s=0))


def test_a_crash_loses_no_message_and_brings_back_none_that_was_deleted(
    kept_emulator: KeptEmulator,
):
    sqs, s3 = client("sqs"), client("s3")
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    work = sqs.create_queue(
        QueueName="work",
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": 1}
            )
        },
    )["QueueUrl"]
    events = sqs.create_queue(QueueName="events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["QueueArn"])
    s3.create_bucket(Bucket="crash-test")
    s3.put_bucket_notification_configuration(
        Bucket="crash-test",
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": events_arn["Attributes"]["QueueArn"],
                    "Events": ["s3:ObjectCreated:*"],
                }
            ]
        },
    )
    sqs.purge_queue(QueueUrl=events)  # the s3:TestEvent
    keys = [f"images/{n:02d}/x y.png" for n in range(12)]
    for key in keys:
        s3.put_object(Bucket="crash-test", Key=key, Body=b"png")
    for n in range(25):
        sqs.send_message(QueueUrl=work, MessageBody=f"m{n}")
    received = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10, VisibilityTimeout=0)
    deleted = received["Messages"][:7]
    sqs.delete_message_batch(
        QueueUrl=work,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(deleted)
        ],
    )
    # Received once already (maxReceiveCount 1): the next receive moves these three to the DLQ.
    dead = {m["Body"] for m in received["Messages"][7:]}
    sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=1, VisibilityTimeout=0)
    later = sqs.create_queue(QueueName="created-after-start")["QueueUrl"]
    sqs.send_message(QueueUrl=later, MessageBody="late")
    expected_work = Counter(f"m{n}" for n in range(25)) - Counter(m["Body"] for m in deleted)

    kept_emulator.crash()
    journal = kept_emulator.data_dir / "state" / JOURNAL
    replayed = journal.read_bytes()
    with journal.open("ab") as out:
        out.write(b'{"q": ["000000000000", "us-east-1", "http://loc')  # a torn last line
    kept_emulator.start()

    assert sorted(notification_keys(receive_all(events, wait_s=0))) == sorted(keys)
    left, dead_lettered = bodies(work), bodies(dlq)  # the receive may dead-letter some more
    assert left + dead_lettered == expected_work and dead <= set(dead_lettered)
    assert bodies(later) == Counter(["late"])
    assert "after a crash (1 torn)" in kept_emulator.log

    # Another crash, as if recovery's compaction had stopped before emptying the journal:
    # the changes replayed then are replayed again, over the state that holds them already.
    sqs.send_message(QueueUrl=later, MessageBody="later still")
    kept_emulator.crash()
    journal.write_bytes(replayed + journal.read_bytes())
    kept_emulator.start()
    assert bodies(work) + bodies(dlq) == expected_work
    assert bodies(later) == Counter(["late", "later still"])
