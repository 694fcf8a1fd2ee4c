"""ObjectStore against a real moto server over HTTP."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest
import requests
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pixsearch.events import encode_key, parse_record
from pixsearch.storage import ConflictError, ObjectNotFound, ObjectStore
from tests.fixtures.aws import receive_all


def test_put_if_absent_refuses_a_second_writer(store: ObjectStore):
    first = store.put_if_absent("images/aa/x.jpg", b"one", metadata={"source-url": "http://a/x"})
    with pytest.raises(ConflictError) as raised:
        store.put_if_absent("images/aa/x.jpg", b"two")
    assert raised.value.key == "images/aa/x.jpg"
    body, info = store.get_with_info("images/aa/x.jpg")
    assert (body, info.etag, info.metadata) == (b"one", first, {"source-url": "http://a/x"})


def test_replace_if_match_refuses_a_stale_etag(store: ObjectStore):
    first = store.put("index/m/MANIFEST.json", b'{"version": 1}')
    second = store.replace_if_match("index/m/MANIFEST.json", b'{"version": 2}', first)
    with pytest.raises(ConflictError):
        store.replace_if_match("index/m/MANIFEST.json", b'{"version": 3}', first)
    assert store.get("index/m/MANIFEST.json") == b'{"version": 2}'
    assert store.head("index/m/MANIFEST.json").etag == second


def test_missing_objects(store: ObjectStore):
    assert store.head("maps/none.jsonl") is None
    with pytest.raises(ObjectNotFound, match="maps/none.jsonl"):
        store.get("maps/none.jsonl")


def test_list_count_delete_and_presigned_url(store: ObjectStore):
    for number in range(3):
        store.put(f"maps/list/{number:05d}.jsonl", b"{}\n")
    store.put("images/aa/y.png", b"png", content_type="image/png")
    assert [info.key for info in store.list("maps/")] == [
        f"maps/list/{n:05d}.jsonl" for n in range(3)
    ]
    store.delete("maps/list/00001.jsonl")
    assert store.count("maps/") == 2
    response = requests.get(store.presigned_get_url("images/aa/y.png"), timeout=10)
    assert response.status_code == 200 and response.content == b"png"


def test_an_image_event_arrives_with_spaces_and_unicode_intact(
    store: ObjectStore, queues, emulator_backend: str
):
    key = "images/ab/a photo + ünïcode ✓.jpg"
    etag = store.put(key, b"jpeg bytes")
    messages = [m for m in receive_all(queues["embed"].queue) if "Records" in m["Body"]]
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    sent = body["Records"][0]["s3"]["object"]["key"]
    # moto escapes "/" (%2F), S3 does not: both decode to the key.
    as_s3_sends_it = encode_key(key)
    assert sent == (quote_plus(key, safe="") if emulator_backend == "moto" else as_s3_sends_it)
    for encoded in {sent, as_s3_sends_it}:
        body["Records"][0]["s3"]["object"]["key"] = encoded
        record = SQSRecord({"messageId": messages[0]["MessageId"], "body": json.dumps(body)})
        (event,) = parse_record(record)
        assert (event.key, event.etag, event.size, event.bucket) == (key, etag, 10, store.bucket)


def test_only_matching_prefixes_reach_a_stage_queue(store: ObjectStore, queues):
    store.put("maps/list/00000.jsonl", b"{}")
    store.put("embeddings/tag/shard.ids.json", b"{}")
    store.put("embeddings/tag/shard.npy", b"npy")
    index_bodies = [m["Body"] for m in receive_all(queues["index"].queue) if "Records" in m["Body"]]
    assert len(index_bodies) == 1 and "shard.npy" in index_bodies[0]
    assert [m for m in receive_all(queues["embed"].queue, wait_s=0) if "Records" in m["Body"]] == []
