"""events/{download,embed,index}.json: real notifications, and each one works its function.

The functions are the Lambda images' entry points: ``functions/<name>/app.py`` and
the attribute their Dockerfile's CMD names.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pixsearch import layout, topology
from pixsearch.config import Settings
from pixsearch.download.urlmap import read_summary
from pixsearch.events import ObjectEvent, encode_key, parse_record
from pixsearch.runtime.lambda_shapes import LambdaContext
from pixsearch.storage import ObjectStore
from tests.fixtures.images import ImageServer
from tests.functional.deploy.dockerfiles import instructions
from tests.functional.deploy.sources import (
    EVENTS,
    ROOT,
    load_module,
    sample_events_generator,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


generate = sample_events_generator()


def event(stage_name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{stage_name}.json").read_text())


def object_events(sample: dict[str, Any]) -> list[ObjectEvent]:
    return [item for raw in sample["Records"] for item in parse_record(SQSRecord(raw))]


def function(name: str) -> Handler:
    """What the function's Lambda image runs: ``CMD ["app.<attribute>"]`` of its app.py."""
    dockerfile = ROOT / "functions" / name / "Dockerfile"
    (command,) = [i.words() for i in instructions(dockerfile) if i.keyword == "CMD"]
    attribute = command[0].removeprefix("app.")
    return getattr(load_module(dockerfile.parent / "app.py", f"pixsearch_{name}_app"), attribute)


def context(name: str) -> LambdaContext:
    spec = topology.stage(name)
    return LambdaContext(f"{name.capitalize()}Function", spec.memory_mb, spec.function_timeout_s)


def retarget(sample: dict[str, Any], bucket: str) -> dict[str, Any]:
    """The sample event as if its notifications came from ``bucket``."""
    moved = copy.deepcopy(sample)
    for record in moved["Records"]:
        body = json.loads(record["body"])
        for s3_record in body["Records"]:
            s3_record["s3"]["bucket"] = {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}
        record["body"] = json.dumps(body)
    return moved


@pytest.mark.parametrize("name", [spec.name for spec in topology.STAGES])
def test_event_is_an_sqs_batch_of_notifications_the_stage_subscribes_to(name: str) -> None:
    spec = topology.stage(name)
    sample = event(name)
    for record in sample["Records"]:
        assert record["eventSource"] == "aws:sqs"
        queue = topology.queue_name(Settings(), name)
        assert record["eventSourceARN"].endswith(f":{queue}")
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    found = object_events(sample)
    assert found
    for item in found:
        assert item.bucket == Settings().bucket
        assert any(
            item.key.startswith(trigger.prefix)
            and item.key.endswith(trigger.suffix)
            and any(item.event_name.startswith(e.removeprefix("s3:")[:-1]) for e in trigger.events)
            for trigger in spec.triggers
        ), f"{name} does not subscribe to {item.event_name} {item.key}"


@pytest.mark.parametrize("name", [spec.name for spec in topology.STAGES])
def test_event_keys_are_encoded_as_s3_sends_them(name: str) -> None:
    """S3 keeps ``/`` in notification keys; escaping it (``%2F``) is a moto quirk."""
    for record in event(name)["Records"]:
        for s3_record in json.loads(record["body"])["Records"]:
            key = s3_record["s3"]["object"]["key"]
            assert "%2F" not in key and "/" in key
            assert key == encode_key(unquote_plus(key))


def test_events_name_the_objects_the_generator_stores() -> None:
    (download,) = object_events(event("download"))
    (embed,) = object_events(event("embed"))
    created, removed = object_events(event("index"))
    assert download.key == generate.URL_LIST_KEY
    assert download.etag == hashlib.md5(generate.url_list()).hexdigest()
    assert embed.key == removed.key == generate.image_key()
    assert embed.etag == hashlib.md5(generate.image()).hexdigest()
    assert created.key.endswith(layout.SHARD_SUFFIX) and removed.is_removal


def test_download_event_downloads_the_list(
    image_server: ImageServer, settings: Settings, store: ObjectStore
) -> None:
    urls = image_server.add_images(2, fmt="PNG")
    store.put(generate.URL_LIST_KEY, "".join(f"{url}\n" for url in urls).encode())

    response = function("download")(retarget(event("download"), store.bucket), context("download"))

    assert response == {"batchItemFailures": []}
    summary = read_summary(store, layout.list_name(generate.URL_LIST_KEY))
    assert summary is not None and summary["counts"].get("ok") == len(urls), summary
    assert store.count(layout.IMAGES) == len(urls)


def test_embed_then_index_events_build_the_index(
    tiny_model: object, settings: Settings, store: ObjectStore
) -> None:
    """The embed event writes a shard of the tag the index event names; the index takes it in.

    A shard is named by its images' keys, ETags and upload times, so the one written
    now differs from the recorded one only in its id: the index event is pointed at it.
    """
    generate.put_image(store)
    (created, removed) = object_events(event("index"))

    response = function("embed")(retarget(event("embed"), store.bucket), context("embed"))
    assert response == {"batchItemFailures": []}
    tag, recorded = layout.parse_shard_key(created.key)
    assert tag == settings.model_tag
    (written,) = [
        layout.parse_shard_key(info.key)[1]
        for info in store.list(layout.embeddings_prefix(tag))
        if info.key.endswith(layout.SHARD_SUFFIX)
    ]

    store.delete(removed.key)
    sample = json.loads(
        json.dumps(retarget(event("index"), store.bucket)).replace(recorded, written)
    )
    response = function("index")(sample, context("index"))
    assert response == {"batchItemFailures": []}
    manifest = json.loads(store.get(layout.manifest_key(tag)))
    assert list(manifest["tombstones"]) == [removed.key], manifest
    assert manifest["vector_count"] == 0 and manifest["shards"] == [written], manifest
