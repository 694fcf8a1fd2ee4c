"""S3-notification-in-SQS parsing and the partial batch response contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pixsearch.events import (
    EventParseError,
    ObjectEvent,
    each,
    encode_key,
    parse_record,
    process_batch,
)


def s3_body(key: str, event_name: str = "ObjectCreated:Put", etag: str = "abc") -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventName": event_name,
                    "s3": {
                        "bucket": {"name": "bucket"},
                        "object": {"key": key, "size": 12, "eTag": etag},
                    },
                }
            ]
        }
    )


def sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {"messageId": message_id, "receiptHandle": f"r-{message_id}", "body": body}


@pytest.mark.parametrize(
    "encoded",
    ["images/a+b%C3%BC%2B.jpg", "images%2Fa+b%C3%BC%2B.jpg"],
    ids=["as-s3-sends-it", "moto-escapes-slashes"],
)
def test_keys_are_url_decoded_and_fields_carried(encoded: str):
    (event,) = parse_record(SQSRecord(sqs_record("m1", s3_body(encoded))))
    assert event == ObjectEvent("m1", "bucket", "images/a bü+.jpg", "ObjectCreated:Put", 12, "abc")
    assert event.is_creation and not event.is_removal


def test_keys_are_encoded_as_s3_encodes_them():
    assert encode_key("images/a bü+.jpg") == "images/a+b%C3%BC%2B.jpg"
    assert encode_key("urls/team/may list.txt") == "urls/team/may+list.txt"


def test_removal_events_have_no_etag():
    body = json.loads(s3_body("images/x.jpg", "ObjectRemoved:Delete"))
    del body["Records"][0]["s3"]["object"]["eTag"]
    del body["Records"][0]["s3"]["object"]["size"]
    (event,) = parse_record(SQSRecord(sqs_record("m1", json.dumps(body))))
    assert event.is_removal and event.etag is None and event.size is None


def test_test_event_is_skipped():
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    assert parse_record(SQSRecord(sqs_record("m1", body))) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ("{}", "no 'Records' list"),
        (json.dumps({"Records": []}), "no 'Records' list"),
        (json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}), "missing or has a bad"),
        (s3_body("images/x.jpg", "ObjectRestore:Post"), "unsupported S3 event"),
    ],
)
def test_malformed_bodies_raise_a_precise_error(body: str, reason: str):
    with pytest.raises(EventParseError, match=reason) as raised:
        parse_record(SQSRecord(sqs_record("m-bad", body)))
    assert "m-bad" in str(raised.value)


def test_process_batch_reports_only_the_failed_records():
    event = {
        "Records": [
            sqs_record("ok", s3_body("images/ok.jpg")),
            sqs_record("broken", "{"),
            sqs_record("fails", s3_body("images/fails.jpg")),
            sqs_record("test", json.dumps({"Event": "s3:TestEvent"})),
        ]
    }
    seen: list[str] = []

    def handle(object_event: ObjectEvent) -> None:
        seen.append(object_event.key)
        if "fails" in object_event.key:
            raise RuntimeError("boom")

    response = process_batch(event, None, each(handle))

    assert seen == ["images/ok.jpg", "images/fails.jpg"]
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == [
        "broken",
        "fails",
    ]


def test_process_batch_with_every_record_failing_still_answers():
    event = {"Records": [sqs_record("a", "x"), sqs_record("b", "y")]}
    response = process_batch(event, None, each(lambda _: None))
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["a", "b"]
