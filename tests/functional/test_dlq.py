"""``pixsearch dlq list|redrive`` against each emulator and the local runtime.

Neither emulator has SQS's ``StartMessageMoveTask`` (moto answers 500, MiniStack
400 ``InvalidAction``): on both the redrive must notice and resend instead.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from pixsearch import cli, dlq, topology
from pixsearch.config import Settings
from pixsearch.events import ObjectEvent, each, process_batch
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore, client
from tests.fixtures.aws import on_every_backend as pytest_generate_tests
from tests.fixtures.aws import receive_all

__all__ = ["pytest_generate_tests"]


def failing_on(marker: str):
    def handle_one(event: ObjectEvent) -> None:
        if marker in event.key:
            raise ValueError(f"cannot read {event.key}")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return process_batch(event, context, each(handle_one))

    return handler


def s3_event(key: str) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": 1}},
                }
            ]
        }
    )


def test_list_shows_stage_keys_receives_and_first_failure_and_leaves_them(
    settings: Settings, queues, store: ObjectStore
):
    store.put("images/aa/bad one.jpg", b"bytes")
    store.put("images/bb/fine.jpg", b"bytes")
    Dispatcher(settings, queues, {"embed": failing_on("bad")}).drain(timeout_s=60)
    client("sqs").send_message(QueueUrl=queues["index"].dlq, MessageBody="garbled")

    letters = dlq.list_dead_letters(settings)

    by_stage = {letter.stage: letter for letter in letters}
    assert sorted(by_stage) == ["embed", "index"] and len(letters) == 2
    embed = by_stage["embed"]
    assert embed.object_keys == ("images/aa/bad one.jpg",)
    assert embed.receive_count == topology.stage("embed").max_receive_count
    assert embed.first_failure == "ValueError: cannot read images/aa/bad one.jpg"
    assert (by_stage["index"].object_keys, by_stage["index"].first_failure) == ((), None)
    assert by_stage["index"].body_excerpt == "garbled"
    assert [x.message_id for x in dlq.list_dead_letters(settings, "embed")] == [embed.message_id]
    table = dlq.render(letters)
    assert "images/aa/bad one.jpg" in table and "unknown (see the function's logs)" in table


def test_redrive_moves_each_dead_letter_back_once(settings: Settings, queues):
    sqs = client("sqs")
    bodies = [s3_event(f"images/{n:02d}/x.jpg") for n in range(13)]
    for body in bodies:
        sqs.send_message(QueueUrl=queues["embed"].dlq, MessageBody=body)
    sqs.send_message(QueueUrl=queues["download"].dlq, MessageBody=s3_event("urls/a.txt"))

    results = dlq.redrive(settings, "embed")

    assert [(r.stage, r.method, r.moved) for r in results] == [("embed", "resend", 13)]
    moved = Counter(m["Body"] for m in receive_all(queues["embed"].queue) if "x.jpg" in m["Body"])
    assert moved == Counter(bodies)
    assert receive_all(queues["embed"].dlq, wait_s=0) == []
    assert len(receive_all(queues["download"].dlq, wait_s=0)) == 1  # other stages untouched


def test_cli_lists_and_redrives(settings: Settings, queues, capsys: pytest.CaptureFixture[str]):
    client("sqs").send_message(
        QueueUrl=queues["index"].dlq, MessageBody=s3_event("embeddings/s.npy")
    )

    assert cli.main(["dlq", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["stage"], listed["object_keys"]) == ("index", ["embeddings/s.npy"])

    assert cli.main(["dlq", "redrive"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "download: no dead letters",
        "embed: no dead letters",
        "index: sent 1 message(s) back",
    ]
    assert cli.main(["dlq", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no dead-lettered messages"
