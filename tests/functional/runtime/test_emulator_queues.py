"""The emulator's SQS under concurrent receivers: nothing lost, nothing handed out twice.

One sender, several receivers receiving and deleting at once, on each backend.
The visibility timeout outlasts the test, so any second delivery of a message
is one handed to two receivers at once (or a delete that was lost).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from pixsearch.runtime.emulator import EmulatorProcess
from pixsearch.storage import client

MESSAGES = 3000
RECEIVERS = 4


def test_concurrent_receivers_lose_nothing_and_share_nothing(
    emulator: EmulatorProcess, settings
) -> None:
    sqs = client("sqs")
    url = sqs.create_queue(
        QueueName=f"{settings.queue_prefix}stress", Attributes={"VisibilityTimeout": "300"}
    )["QueueUrl"]
    deliveries: Counter[str] = Counter()
    lock = threading.Lock()
    sent = threading.Event()

    def send() -> None:
        for start in range(0, MESSAGES, 10):
            entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)]
            assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        sent.set()

    def receive() -> None:
        receiver = client("sqs")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            batch = receiver.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not batch:
                with lock:
                    if sent.is_set() and sum(deliveries.values()) >= MESSAGES:
                        return
                continue
            with lock:
                deliveries.update(message["Body"] for message in batch)
            entries = [
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(batch)
            ]
            assert not receiver.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")

    with ThreadPoolExecutor(RECEIVERS + 1) as pool:
        futures = [pool.submit(receive) for _ in range(RECEIVERS)] + [pool.submit(send)]
        for future in futures:
            future.result()

    lost = {f"m{i}" for i in range(MESSAGES)} - set(deliveries)
    doubled = {body: n for body, n in deliveries.items() if n > 1}
    assert not lost, f"{len(lost)} messages never delivered, e.g. {sorted(lost)[:5]}"
    assert not doubled, f"{len(doubled)} messages delivered twice, e.g. {list(doubled)[:5]}"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
