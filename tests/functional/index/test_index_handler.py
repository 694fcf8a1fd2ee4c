"""The index function on moto server: a bad shard fails alone, removals become tombstones."""

from __future__ import annotations

import io

import numpy as np

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.index.handler import lambda_handler
from pixsearch.index.manifest import read
from pixsearch.runtime.lambda_shapes import lambda_sqs_event
from pixsearch.storage import ObjectStore, client
from pixsearch.topology import QueueUrls
from tests.fixtures.aws import receive_all
from tests.fixtures.model import unit_vectors, write_shard


def _invoke(queue_url: str) -> tuple[dict, list[dict]]:
    messages = [m for m in receive_all(queue_url) if "s3:TestEvent" not in m["Body"]]
    arn = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    event = lambda_sqs_event(messages, arn["Attributes"]["QueueArn"], "us-east-1")
    return lambda_handler(event, None), messages


def test_a_bad_shard_fails_alone(
    settings: Settings, store: ObjectStore, queues: dict[str, QueueUrls]
):
    tag = settings.model_tag
    keys = [f"images/ab/{n:064x}.png" for n in range(4)]
    write_shard(store, tag, keys, unit_vectors(4, 8, 0))
    orphan = io.BytesIO()
    np.save(orphan, unit_vectors(2, 8, 1), allow_pickle=False)
    store.put(layout.shard_key(tag, "no-ids-file"), orphan.getvalue())

    response, messages = _invoke(queues["index"].queue)

    bad = [m["MessageId"] for m in messages if "no-ids-file" in m["Body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    manifest, _ = read(store, tag)
    assert (manifest.vector_count, len(manifest.shards)) == (4, 1)


def test_image_removals_become_tombstones(
    settings: Settings, store: ObjectStore, queues: dict[str, QueueUrls]
):
    tag = settings.model_tag
    keys = [f"images/ab/{n:064x}.png" for n in range(3)]
    for key in keys:
        store.put(key, b"image bytes")
    write_shard(store, tag, keys, unit_vectors(3, 8, 0))
    store.delete(keys[1])

    response, _ = _invoke(queues["index"].queue)

    assert response == {"batchItemFailures": []}
    manifest, _ = read(store, tag)
    assert set(manifest.tombstones) == {keys[1]}
    assert manifest.vector_count == 2


def test_a_removal_reaches_every_model_index(
    settings: Settings, store: ObjectStore, queues: dict[str, QueueUrls]
):
    key = "images/ab/" + "1" * 64 + ".png"
    store.put(key, b"image bytes")
    write_shard(store, "other-model__none", [key], unit_vectors(1, 8, 0))
    assert _invoke(queues["index"].queue)[0] == {"batchItemFailures": []}
    store.delete(key)

    assert _invoke(queues["index"].queue)[0] == {"batchItemFailures": []}

    assert set(read(store, "other-model__none")[0].tombstones) == {key}
    assert set(read(store, settings.model_tag)[0].tombstones) == {key}
