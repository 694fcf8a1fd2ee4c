"""Record the sample events of the stage functions from real S3 -> SQS notifications.

    .venv/bin/python events/generate.py    # rewrites events/{download,embed,index}.json

Starts a moto server, creates the topology, stores a URL list and an image the
way the download stage stores it, runs the embed handler on the recorded embed
event (with the tiny model the package ships, so no weights are needed) to get
a real embedding shard, then deletes the image. Each stage queue's messages are
received and wrapped in the event Lambda's SQS event source delivers, ready for
``sam local invoke DownloadFunction -e events/download.json`` and friends.

moto escapes ``/`` in notification keys (``images%2Fb4%2F...``); S3 does not. The
recorded keys are re-encoded as S3 writes them, so the samples are what S3 sends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from PIL import Image, ImageDraw

from pixsearch import layout, topology
from pixsearch.config import Settings, get_settings
from pixsearch.download.sink import SOURCE_URL_METADATA
from pixsearch.embed.handler import lambda_handler as embed
from pixsearch.events import TEST_EVENT, encode_key
from pixsearch.inference import TINY_MODEL
from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port, launch
from pixsearch.runtime.lambda_shapes import LambdaContext, lambda_sqs_event
from pixsearch.storage import ObjectStore, client

EVENTS_DIR = Path(__file__).resolve().parent
URL_LIST_KEY = f"{layout.URLS}sample.txt"
SAMPLE_URLS = (
    "https://images.example/red-circle.png",
    "https://images.example/blue-square.png",
)


def url_list() -> bytes:
    return "".join(f"{url}\n" for url in SAMPLE_URLS).encode()


def image() -> bytes:
    """A small PNG, the same bytes on every run (its ETag is in the recorded event)."""
    picture = Image.new("RGB", (32, 24), (200, 40, 40))
    ImageDraw.Draw(picture).ellipse((8, 6, 24, 18), fill=(255, 255, 255))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def image_key() -> str:
    return layout.image_key(hashlib.sha256(image()).hexdigest(), "png")


def put_image(store: ObjectStore) -> None:
    """Store the sample image as the download stage does: content key, source URL metadata."""
    store.put(
        image_key(),
        image(),
        content_type="image/png",
        metadata={SOURCE_URL_METADATA: SAMPLE_URLS[0]},
    )


def record(settings: Settings) -> dict[str, dict[str, Any]]:
    """Create the topology on the current endpoint and record one event per stage."""
    s3, sqs = client("s3", settings.region), client("sqs", settings.region)
    urls = topology.ensure(s3, sqs, settings)
    store = ObjectStore(settings.bucket, s3)

    store.put(URL_LIST_KEY, url_list(), content_type="text/plain")
    put_image(store)
    events = {
        "download": receive(sqs, urls["download"].queue, settings.region, count=1),
        "embed": receive(sqs, urls["embed"].queue, settings.region, count=1),
    }
    context = LambdaContext("EmbedFunction", 3008, topology.stage("embed").function_timeout_s)
    response = embed(events["embed"], context)
    if response["batchItemFailures"]:
        raise RuntimeError(f"the embed handler failed on the sample event: {response}")
    store.delete(image_key())
    events["index"] = receive(sqs, urls["index"].queue, settings.region, count=2)
    return events


def receive(sqs: Any, queue_url: str, region: str, count: int) -> dict[str, Any]:
    """Wait for ``count`` S3 notifications on a queue; wrap them as Lambda's SQS event."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(messages) < count and time.monotonic() < deadline:
        received = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        messages += [m for m in received if json.loads(m["Body"]).get("Event") != TEST_EVENT]
    if len(messages) != count:
        raise RuntimeError(f"expected {count} notifications on {queue_url}, got {len(messages)}")
    messages.sort(key=lambda message: int(message["Attributes"]["SentTimestamp"]))
    messages = [as_s3_sends_it(message) for message in messages]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return lambda_sqs_event(messages, arn["Attributes"]["QueueArn"], region)


def as_s3_sends_it(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its notification keys encoded as S3 encodes them (and its MD5)."""
    body = json.loads(message["Body"])
    for s3_record in body["Records"]:
        s3_object = s3_record["s3"]["object"]
        s3_object["key"] = encode_key(unquote_plus(s3_object["key"]))
    text = json.dumps(body)
    return {**message, "Body": text, "MD5OfBody": hashlib.md5(text.encode()).hexdigest()}


def main() -> int:
    os.environ.update(PIXSEARCH_MODEL=TINY_MODEL, PIXSEARCH_PRETRAINED="")
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    with launch("moto", port=free_port()) as server:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
        client.cache_clear()
        get_settings.cache_clear()
        events = record(get_settings())
    for stage_name, event in events.items():
        path = EVENTS_DIR / f"{stage_name}.json"
        path.write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote {path} ({len(event['Records'])} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
