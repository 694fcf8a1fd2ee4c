"""Images in the bucket -> embed -> index -> search, on moto server driven by the local runtime."""

from __future__ import annotations

import io
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pixsearch.config import Settings
from pixsearch.embed.handler import lambda_handler as embed_handler
from pixsearch.index.handler import lambda_handler as index_handler
from pixsearch.index.manifest import read as read_manifest
from pixsearch.index.reader import load_snapshot
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.runtime.lambda_shapes import lambda_sqs_event
from pixsearch.storage import ObjectStore, client
from pixsearch.topology import QueueUrls
from tests.fixtures.aws import receive_all
from tests.fixtures.model import StoredImage, store_images

pytestmark = pytest.mark.e2e


def load_manifest(store: ObjectStore, tag: str):
    return read_manifest(store, tag)[0]


def _vectors(model: ClipModel, images: list[StoredImage]) -> np.ndarray:
    return model.encode_images([Image.open(io.BytesIO(image.data)) for image in images])


def test_n_images_become_exactly_n_searchable_vectors(
    tiny_model: ClipModel, store: ObjectStore, pipeline: Dispatcher
):
    images = store_images(store, 12)
    pipeline.drain()
    snapshot = load_snapshot(store, tiny_model.tag)
    assert snapshot.vector_count == 12
    hits = snapshot.search(_vectors(tiny_model, images), k=3)
    for image, found in zip(images, hits, strict=True):
        best = found[0]
        assert best.key == image.key
        assert best.score == pytest.approx(1.0, abs=1e-4)
        assert (best.source_url, best.width, best.height) == (image.source_url, *image.size)
        assert [hit.score for hit in found] == sorted((hit.score for hit in found), reverse=True)


def test_deleted_image_is_excluded_from_search(
    tiny_model: ClipModel, store: ObjectStore, pipeline: Dispatcher
):
    images = store_images(store, 6)
    pipeline.drain()
    removed = images[2]
    store.delete(removed.key)
    pipeline.drain()
    snapshot = load_snapshot(store, tiny_model.tag)
    assert snapshot.vector_count == 5
    found = snapshot.search(_vectors(tiny_model, [removed]), k=10)[0]
    assert len(found) == 5
    assert removed.key not in {hit.key for hit in found}


def _capture(queue_url: str) -> list[dict]:
    """The messages waiting on a queue, left there and visible again."""
    messages = receive_all(queue_url)
    sqs = client("sqs")
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return messages


def _object_events(messages: list[dict]) -> list[dict]:
    """Leave out the ``s3:TestEvent`` S3 sends when notifications are configured."""
    return [message for message in messages if "s3:TestEvent" not in message["Body"]]


def _send(queue_url: str, messages: list[dict]) -> None:
    for message in messages:
        client("sqs").send_message(QueueUrl=queue_url, MessageBody=message["Body"])


def test_redelivered_and_reordered_events_change_nothing(
    tiny_model: ClipModel,
    settings: Settings,
    store: ObjectStore,
    queues: dict[str, QueueUrls],
    pipeline: Dispatcher,
):
    images = store_images(store, 16)
    image_events = _object_events(_capture(queues["embed"].queue))
    assert len(image_events) == 16
    Dispatcher(settings, queues, handlers={"embed": pipeline.handlers["embed"]}).drain()
    shard_events = _capture(queues["index"].queue)
    _send(queues["index"].queue, shard_events[::-1])
    pipeline.drain()
    first = load_manifest(store, tiny_model.tag)
    assert first.vector_count == 16

    # The same image events again, in other orders and other batches: new shards
    # may appear, but no image becomes a second vector.
    random.Random(5).shuffle(image_events)
    _send(queues["embed"].queue, image_events[:5])
    pipeline.drain()
    _send(queues["embed"].queue, image_events[3:] + image_events[:3])
    pipeline.drain()
    _send(queues["index"].queue, shard_events)
    pipeline.drain()

    snapshot = load_snapshot(store, tiny_model.tag)
    assert snapshot.vector_count == 16
    found = snapshot.search(_vectors(tiny_model, images), k=16)
    assert all(len({hit.key for hit in hits}) == len(hits) == 16 for hits in found)
    assert {hit.key for hit in found[0]} == {image.key for image in images}
    assert load_manifest(store, tiny_model.tag).shards >= first.shards


def test_racing_embed_batches_and_index_runs_count_every_image_once(
    tiny_model: ClipModel, settings: Settings, store: ObjectStore, queues: dict[str, QueueUrls]
):
    images = store_images(store, 16)
    image_events = _object_events(receive_all(queues["embed"].queue))
    assert len(image_events) == 16
    _run_concurrently(embed_handler, queues["embed"].queue, settings, image_events, groups=4)
    shard_events = _object_events(receive_all(queues["index"].queue))
    assert len(shard_events) == 4
    # Two index runs at once, with overlapping batches: both publish, neither loses a shard.
    overlapping = [shard_events[:3], shard_events[1:]]
    _run_concurrently(index_handler, queues["index"].queue, settings, overlapping)

    manifest = load_manifest(store, tiny_model.tag)
    assert manifest.vector_count == 16
    assert len(manifest.shards) == 4
    snapshot = load_snapshot(store, tiny_model.tag)
    keys = {hit.key for hit in snapshot.search(_vectors(tiny_model, images[:1]), k=50)[0]}
    assert keys == {image.key for image in images}


def _run_concurrently(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    queue_url: str,
    settings: Settings,
    messages: list[dict] | list[list[dict]],
    groups: int = 0,
) -> None:
    batches = [messages[i::groups] for i in range(groups)] if groups else messages
    arn = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    start = threading.Barrier(len(batches))

    def invoke(batch: list[dict]) -> dict[str, Any]:
        start.wait()
        return handler(lambda_sqs_event(batch, arn, settings.region), None)

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        responses = list(pool.map(invoke, batches))
    assert all(response == {"batchItemFailures": []} for response in responses)


def test_an_undecodable_image_ends_in_the_dlq_and_the_others_are_indexed(
    tiny_model: ClipModel, store: ObjectStore, queues: dict[str, QueueUrls], pipeline: Dispatcher
):
    store_images(store, 5)
    store.put("images/00/" + "0" * 64 + ".png", b"\x89PNG\r\n\x1a\n but not really a PNG")
    pipeline.drain()
    assert load_snapshot(store, tiny_model.tag).vector_count == 5
    dead = receive_all(queues["embed"].dlq)
    assert len(dead) == 1
    assert "0" * 64 in dead[0]["Body"]
