"""The local runtime against a real moto server: partial failures, redelivery, DLQ."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

from pixsearch import status, topology
from pixsearch.events import ObjectEvent, each, process_batch
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore, client
from tests.fixtures.aws import notification_keys, receive_all


def recording_handler(calls: Counter[str], fail_when: str | None = None):
    """A stage handler that records each key it sees and fails keys containing ``fail_when``."""

    def handle_one(event: ObjectEvent) -> None:
        calls[event.key] += 1
        if fail_when and fail_when in event.key:
            raise ValueError(f"cannot handle {event.key}")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return process_batch(event, context, each(handle_one))

    return handler


def test_one_failing_record_is_retried_then_dead_lettered(settings, queues, store: ObjectStore):
    calls: Counter[str] = Counter()
    dispatcher = Dispatcher(settings, queues, {"embed": recording_handler(calls, "bad")})
    for name in ("images/aa/good-1.jpg", "images/bb/bad.jpg", "images/cc/good-2.jpg"):
        store.put(name, b"bytes")

    dispatcher.drain(timeout_s=60)

    assert calls["images/aa/good-1.jpg"] == 1
    assert calls["images/cc/good-2.jpg"] == 1
    # maxReceiveCount deliveries, then the redrive policy acts
    assert calls["images/bb/bad.jpg"] == topology.stage("embed").max_receive_count
    embed_status = status.collect(settings)["stages"]["embed"]
    assert embed_status == {"queued": 0, "in_flight": 0, "dead_letters": 1}
    assert "embed" in status.render(status.collect(settings))
    dead = receive_all(queues["embed"].dlq)
    assert notification_keys(dead) == ["images/bb/bad.jpg"]
    assert receive_all(queues["embed"].queue, wait_s=0) == []
    assert dispatcher.stats["embed"].failed_records == topology.stage("embed").max_receive_count


def test_duplicate_delivery_calls_the_handler_again(settings, queues, store: ObjectStore):
    calls: Counter[str] = Counter()
    dispatcher = Dispatcher(settings, queues, {"embed": recording_handler(calls)})
    store.put("images/aa/once.jpg", b"bytes")
    sqs = client("sqs")
    received = receive_all(queues["embed"].queue)
    (message,) = [m for m in received if "Records" in m["Body"]]
    sqs.send_message(QueueUrl=queues["embed"].queue, MessageBody=message["Body"])
    for each_message in received:
        sqs.change_message_visibility(
            QueueUrl=queues["embed"].queue,
            ReceiptHandle=each_message["ReceiptHandle"],
            VisibilityTimeout=0,
        )

    dispatcher.drain(timeout_s=30)

    assert calls["images/aa/once.jpg"] == 2


def test_malformed_messages_fail_alone_and_end_in_the_dlq(settings, queues, store: ObjectStore):
    calls: Counter[str] = Counter()
    dispatcher = Dispatcher(settings, queues, {"embed": recording_handler(calls)})
    sqs = client("sqs")
    bad_bodies = [
        "not json at all",
        json.dumps([1, 2]),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
        json.dumps(
            {
                "Records": [
                    {
                        "eventName": "ObjectRestore:Completed",
                        "s3": {"bucket": {"name": "b"}, "object": {"key": "images/x.jpg"}},
                    }
                ]
            }
        ),
    ]
    for body in bad_bodies:
        sqs.send_message(QueueUrl=queues["embed"].queue, MessageBody=body)
    store.put("images/aa/fine.jpg", b"bytes")

    dispatcher.drain(timeout_s=60)

    assert calls == Counter({"images/aa/fine.jpg": 1})
    assert sorted(m["Body"] for m in receive_all(queues["embed"].dlq)) == sorted(bad_bodies)


def test_a_handler_that_raises_fails_the_whole_batch(settings, queues, store: ObjectStore):
    attempts: list[int] = []

    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        attempts.append(len(event["Records"]))
        assert context.get_remaining_time_in_millis() > 0
        raise RuntimeError("out of memory")

    dispatcher = Dispatcher(settings, queues, {"download": broken})
    store.put("urls/list.txt", b"http://example.com/a.jpg\n")

    dispatcher.drain(timeout_s=60)

    assert len([n for n in attempts if n]) >= 2
    assert dispatcher.stats["download"].errors == len(attempts)
    dead = receive_all(queues["download"].dlq)
    assert "urls/list.txt" in notification_keys(dead)


def test_stages_without_a_handler_are_reported_absent(settings, queues):
    dispatcher = Dispatcher(settings, queues, {"embed": recording_handler(Counter())})
    assert dispatcher.absent_stages == ["download", "index"]


def test_background_pollers_respect_each_stage_concurrency(settings, queues, store: ObjectStore):
    lock = threading.Lock()
    running = Counter()
    peak = Counter()
    handled = Counter()

    def slow(stage: str):
        def handler(event: dict[str, Any], context: Any) -> None:
            with lock:
                running[stage] += 1
                peak[stage] = max(peak[stage], running[stage])
            time.sleep(0.3)
            with lock:
                running[stage] -= 1
                handled[stage] += len(event["Records"])

        return handler

    dispatcher = Dispatcher(
        settings, queues, {"index": slow("index"), "download": slow("download")}
    )
    sqs = client("sqs")
    for number in range(12):
        for stage in ("index", "download"):
            sqs.send_message(QueueUrl=queues[stage].queue, MessageBody=f"m{number}")
    dispatcher.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and min(handled["index"], handled["download"]) < 13:
            time.sleep(0.2)
    finally:
        dispatcher.stop()

    assert handled["index"] >= 13 and handled["download"] >= 13  # 12 + the s3:TestEvent
    assert peak["index"] == 1
    assert peak["download"] == topology.stage("download").max_concurrency


def _batches_of(dispatcher: Dispatcher, expected: int) -> list[tuple[float, int]]:
    """Run the pollers until ``expected`` records were handed over; (when, size) of each batch."""
    dispatcher.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(n for _, n in dispatcher.batches) < expected:
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    return dispatcher.batches


class _BatchRecorder(Dispatcher):
    def __init__(self, settings, queues, quiet_s: float) -> None:
        self.batches: list[tuple[float, int]] = []

        def handler(event: dict[str, Any], context: Any) -> None:
            self.batches.append((time.monotonic(), len(event["Records"])))

        super().__init__(
            settings.model_copy(update={"local_batch_quiet_s": quiet_s}), queues, {"embed": handler}
        )


def test_a_quiet_queue_hands_over_its_batch_before_the_window_ends(settings, queues):
    window_s = topology.stage("embed").batching_window_s
    sqs = client("sqs")
    for number in range(5):
        sqs.send_message(QueueUrl=queues["embed"].queue, MessageBody=f"m{number}")
    sent = time.monotonic()

    batches = _batches_of(_BatchRecorder(settings, queues, quiet_s=0.3), 6)  # + s3:TestEvent

    assert sum(n for _, n in batches) == 6
    assert batches[0][0] - sent < window_s - 1.5


def test_records_arriving_steadily_are_gathered_into_one_batch(settings, queues):
    sqs = client("sqs")
    sqs.send_message(QueueUrl=queues["embed"].queue, MessageBody="first")
    stop = threading.Event()

    def send_steadily() -> None:
        for number in range(15):
            if stop.wait(0.1):
                return
            sqs.send_message(QueueUrl=queues["embed"].queue, MessageBody=f"m{number}")

    sender = threading.Thread(target=send_steadily)
    sender.start()
    try:
        batches = _batches_of(_BatchRecorder(settings, queues, quiet_s=2.0), 17)
    finally:
        stop.set()
        sender.join()

    assert sum(n for _, n in batches) == 17  # with the s3:TestEvent
    assert len(batches) <= topology.stage("embed").max_concurrency  # one per poller


def test_stopping_makes_records_awaiting_a_retry_visible(settings, queues, store: ObjectStore):
    calls: Counter[str] = Counter()
    dispatcher = Dispatcher(settings, queues, {"embed": recording_handler(calls, "bad")})
    store.put("images/aa/bad.jpg", b"bytes")
    dispatcher.start()
    deadline = time.monotonic() + 30
    while not calls["images/aa/bad.jpg"] and time.monotonic() < deadline:
        time.sleep(0.1)
    dispatcher.stop()

    waiting = [m for m in receive_all(queues["embed"].queue, wait_s=0) if "bad.jpg" in m["Body"]]
    assert len(waiting) == 1


def test_a_handler_past_its_timeout_has_its_batch_redelivered_then_dead_lettered(
    settings, queues, store: ObjectStore
):
    calls: Counter[str] = Counter()
    release = threading.Event()

    def hangs(event: dict[str, Any], context: Any) -> None:
        for record in event["Records"]:
            calls[record["messageId"], record["body"]] += 1
        release.wait(30)  # a stuck download, say: far past the function timeout

    dispatcher = Dispatcher(settings, queues, {"download": hangs}, {"download": 0.5})
    sqs = client("sqs")
    sqs.send_message(QueueUrl=queues["download"].queue, MessageBody="stuck")
    try:
        dispatcher.drain(timeout_s=60)
    finally:
        release.set()

    max_receives = topology.stage("download").max_receive_count
    assert dispatcher.stats["download"].timeouts >= max_receives
    assert [m["Body"] for m in receive_all(queues["download"].dlq) if m["Body"] == "stuck"]
    (message_id,) = [mid for (mid, body), count in calls.items() if body == "stuck"]
    assert calls[message_id, "stuck"] == max_receives
    assert dispatcher.journal.read()[message_id].reason == "Task timed out after 0.50 seconds"


def test_the_first_failure_reason_of_each_record_is_noted(settings, queues, store: ObjectStore):
    calls: Counter[str] = Counter()
    dispatcher = Dispatcher(settings, queues, {"embed": recording_handler(calls, "bad")})
    store.put("images/bb/bad.jpg", b"bytes")
    store.put("images/cc/good.jpg", b"bytes")

    dispatcher.drain(timeout_s=60)

    (dead,) = receive_all(queues["embed"].dlq)
    note = dispatcher.journal.read()[dead["MessageId"]]
    assert (note.stage, note.reason) == ("embed", "ValueError: cannot handle images/bb/bad.jpg")
    assert len(dispatcher.journal.read()) == 1
