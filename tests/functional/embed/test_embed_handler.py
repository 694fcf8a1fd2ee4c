"""The embed function on moto server: shards, partial batch failure, redelivery."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixsearch import layout, shards
from pixsearch.config import Settings
from pixsearch.embed.handler import lambda_handler
from pixsearch.inference import TINY_MODEL, ClipModel, ModelUnavailable, create_model
from pixsearch.runtime.lambda_shapes import lambda_sqs_event
from pixsearch.storage import ObjectStore, client
from pixsearch.topology import QueueUrls
from tests.fixtures.aws import receive_all
from tests.fixtures.model import store_images

BAD_KEY = "images/00/" + "0" * 64 + ".jpg"


def _invoke(queue_url: str) -> tuple[dict, list[dict]]:
    messages = [m for m in receive_all(queue_url) if "s3:TestEvent" not in m["Body"]]
    arn = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    event = lambda_sqs_event(messages, arn["Attributes"]["QueueArn"], "us-east-1")
    return lambda_handler(event, None), messages


def _shards(store: ObjectStore, tag: str) -> list[str]:
    return sorted(info.key for info in store.list(layout.embeddings_prefix(tag)))


def test_a_batch_becomes_one_shard_with_ids_written_first(
    tiny_model: ClipModel, store: ObjectStore, queues: dict[str, QueueUrls]
):
    images = store_images(store, 5)
    store.put(BAD_KEY, b"\xff\xd8\xff not really a JPEG")
    response, messages = _invoke(queues["embed"].queue)

    bad = [m["MessageId"] for m in messages if "0" * 64 in m["Body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    ids_key, npy_key = _shards(store, tiny_model.tag)
    assert ids_key.endswith(".ids.json") and npy_key.endswith(".npy")
    assert store.head(ids_key).etag != store.head(npy_key).etag
    shard_id = layout.parse_shard_key(npy_key)[1]
    written = shards.read(store, tiny_model.tag, shard_id)
    by_key = {row.key: row for row in written.rows}
    assert set(by_key) == {image.key for image in images}
    for image in images:
        assert (by_key[image.key].source_url, by_key[image.key].width) == (
            image.source_url,
            image.size[0],
        )
    ids = json.loads(store.get(ids_key))
    assert (ids["model_tag"], ids["dim"], ids["count"]) == (tiny_model.tag, tiny_model.dim, 5)
    assert written.vectors.shape == (5, tiny_model.dim) and written.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(written.vectors, axis=1), 1.0, rtol=1e-5)


def test_a_redelivered_batch_writes_nothing_new(
    tiny_model: ClipModel, store: ObjectStore, queues: dict[str, QueueUrls]
):
    store_images(store, 3)
    _, messages = _invoke(queues["embed"].queue)
    before = {key: store.head(key).etag for key in _shards(store, tiny_model.tag)}
    for message in messages:  # not deleted: they come back, as after a lost response
        client("sqs").change_message_visibility(
            QueueUrl=queues["embed"].queue,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0,
        )
    response, again = _invoke(queues["embed"].queue)
    assert len(again) == len(messages) == 3
    assert response == {"batchItemFailures": []}
    assert {key: store.head(key).etag for key in _shards(store, tiny_model.tag)} == before


def test_a_deleted_image_is_skipped_not_failed(
    tiny_model: ClipModel, store: ObjectStore, queues: dict[str, QueueUrls]
):
    images = store_images(store, 2)
    store.delete(images[0].key)
    response, _ = _invoke(queues["embed"].queue)
    assert response == {"batchItemFailures": []}
    shard_id = layout.parse_shard_key(_shards(store, tiny_model.tag)[-1])[1]
    assert [row.key for row in shards.read(store, tiny_model.tag, shard_id).rows] == [images[1].key]


def test_weights_load_from_an_s3_uri(
    tiny_model: ClipModel, store: ObjectStore, settings: Settings, tmp_path
):
    path = tmp_path / "tiny.pt"
    torch.save({k: v * 1.5 for k, v in tiny_model.module.state_dict().items()}, path)
    store.put("weights/tiny.pt", path.read_bytes())
    uri = f"s3://{settings.bucket}/weights/tiny.pt"
    cache = tmp_path / "cache"
    loaded = create_model(Settings(model=TINY_MODEL, pretrained=uri, model_cache_dir=cache))
    assert torch.equal(loaded.module.logit_scale, tiny_model.module.logit_scale * 1.5)
    assert len(list(cache.rglob("tiny.pt"))) == 1
    with pytest.raises(ModelUnavailable, match="PIXSEARCH_PRETRAINED='s3://.*missing.pt'"):
        create_model(
            Settings(
                model=TINY_MODEL,
                pretrained=f"s3://{settings.bucket}/weights/missing.pt",
                model_cache_dir=cache,
            )
        )


def test_tiny_model_is_set_up_before_settings_whatever_the_order(
    settings: Settings, tiny_model: ClipModel
):
    assert (settings.model, settings.pretrained) == (TINY_MODEL, "")
    assert settings.model_tag == tiny_model.tag
