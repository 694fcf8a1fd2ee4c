"""The download stage on moto server: lists in, images + URL maps + summary out."""

from __future__ import annotations

import json
import uuid

import pytest

from pixsearch import layout, topology
from pixsearch.config import Settings, get_settings
from pixsearch.download.handler import lambda_handler
from pixsearch.download.parts import s3_notification
from pixsearch.download.sink import SOURCE_URL_METADATA
from pixsearch.download.urlmap import read_maps, read_summary
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore, client
from tests.fixtures.images import ImageServer, make_image


@pytest.fixture
def download_only(settings: Settings, queues: dict[str, topology.QueueUrls]) -> Dispatcher:
    """The local runtime with only the download stage, so tests see its output alone."""
    return Dispatcher(settings, queues, handlers={"download": lambda_handler})


def _rows(store: ObjectStore, name: str) -> list[dict]:
    return [json.loads(row.to_json()) for m in read_maps(store, name) for row in m.rows]


def test_list_becomes_images_map_and_summary(
    image_server: ImageServer, store: ObjectStore, download_only: Dispatcher
) -> None:
    good = image_server.add_images(3)
    copy = image_server.add_bytes(
        "copy.jpg", make_image((37, 29, 53), shape="circle"), "image/jpeg"
    )
    lines = [*good, copy, image_server.url("missing.jpg"), "not a url"]
    store.put("urls/batch one.txt", "\n".join(lines).encode())
    download_only.drain(timeout_s=60)

    rows = _rows(store, "batch one.txt")
    assert [row["url"] for row in rows] == lines
    # good[0] and copy are the same bytes: whichever finished first is "ok".
    assert sorted([rows[0]["status"], rows[3]["status"]]) == ["duplicate", "ok"]
    assert [row["status"] for row in rows[1:3] + rows[4:]] == ["ok", "ok", "failed", "failed"]
    assert [row["error"] for row in rows[4:]] == ["http_404", "bad_url"]
    assert rows[3]["key"] == rows[0]["key"]
    image_keys = sorted(info.key for info in store.list(layout.IMAGES))
    assert image_keys == sorted(row["key"] for row in rows[:3])
    first = next(row for row in (rows[0], rows[3]) if row["status"] == "ok")
    head = store.head(first["key"])
    assert head is not None and head.metadata[SOURCE_URL_METADATA] == first["url"]
    assert head.content_type == "image/jpeg"

    summary = read_summary(store, "batch one.txt")
    assert summary is not None
    assert summary["counts"] == {"ok": 3, "duplicate": 1, "failed": 2}
    assert summary["failed_by_reason"] == {"bad_url": 1, "http_404": 1}
    assert summary["urls"] == 6 and summary["success_rate"] == round(4 / 6, 4)


def test_long_list_fans_out_into_parts(
    image_server: ImageServer,
    store: ObjectStore,
    download_only: Dispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXSEARCH_DOWNLOAD_CHUNK_SIZE", "2")
    get_settings.cache_clear()
    urls = image_server.add_images(5, fmt="PNG")
    store.put(
        "urls/long.csv",
        ("url,caption\n" + "".join(f"{u},c{i}\n" for i, u in enumerate(urls))).encode(),
    )
    download_only.drain(timeout_s=60)

    maps = read_maps(store, "long.csv")
    assert [len(m.rows) for m in maps] == [2, 2, 1]
    rows = [row for m in maps for row in m.rows]
    assert [row.url for row in rows] == urls
    assert [row.caption for row in rows] == [f"c{i}" for i in range(5)]
    assert all(row.status == "ok" for row in rows)
    assert store.count(layout.IMAGES) == 5
    summary = read_summary(store, "long.csv")
    assert summary is not None and summary["parts"] == 3 and summary["counts"]["ok"] == 5

    # A shorter version of the same list replaces the map, leaving no stale parts.
    store.put("urls/long.csv", f"url\n{urls[0]}\n".encode())
    download_only.drain(timeout_s=60)
    assert [len(m.rows) for m in read_maps(store, "long.csv")] == [1]
    assert [info.key for info in store.list(f"{layout.PARTS}long.csv/")] == [
        layout.part_key("long.csv", 0)
    ]
    summary = read_summary(store, "long.csv")
    assert summary is not None and summary["parts"] == 1 and summary["counts"]["duplicate"] == 1


def test_redelivered_event_keeps_finished_rows_and_refetches_failed_ones(
    image_server: ImageServer, store: ObjectStore, settings: Settings
) -> None:
    url = image_server.add_image("a.jpg")
    flaky = image_server.url("later.jpg")
    store.put("urls/again.txt", f"{url}\n{flaky}\n".encode())
    event = _event(settings.bucket, "urls/again.txt")
    assert lambda_handler(event, None) == {"batchItemFailures": []}
    first = _rows(store, "again.txt")
    assert [r["status"] for r in first] == ["ok", "failed"]

    image_server.add_image("later.jpg", color=(1, 2, 3))
    assert lambda_handler(event, None) == {"batchItemFailures": []}
    second = _rows(store, "again.txt")
    assert second[0] == first[0]
    assert second[1]["status"] == "ok"
    assert image_server.hits["/a.jpg"] == 1
    assert store.count(layout.IMAGES) == 2


def test_unparseable_list_is_one_clear_failed_row(store: ObjectStore, settings: Settings) -> None:
    store.put("urls/broken.csv", b"name,size\nx,1\n")
    assert lambda_handler(_event(settings.bucket, "urls/broken.csv"), None) == {
        "batchItemFailures": []
    }
    rows = _rows(store, "broken.csv")
    assert len(rows) == 1 and rows[0]["error"] == "unparseable_list"
    assert "no 'url' column" in rows[0]["message"]
    summary = read_summary(store, "broken.csv")
    assert summary is not None and summary["failed_by_reason"] == {"unparseable_list": 1}


def test_a_bad_record_fails_alone(
    image_server: ImageServer, store: ObjectStore, settings: Settings
) -> None:
    store.put("urls/fine.txt", image_server.add_image("f.jpg").encode())
    event = {
        "Records": [
            _event(settings.bucket, "urls/fine.txt")["Records"][0],
            _event(settings.bucket, "maps/not-a-list.jsonl", message_id="bad")["Records"][0],
            {**_event(settings.bucket, "x")["Records"][0], "messageId": "junk", "body": "{"},
        ]
    }
    response = lambda_handler(event, None)
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == ["bad", "junk"]
    assert [r["status"] for r in _rows(store, "fine.txt")] == ["ok"]


def test_vanished_list_is_not_an_error(store: ObjectStore, settings: Settings) -> None:
    assert lambda_handler(_event(settings.bucket, "urls/gone.txt"), None) == {
        "batchItemFailures": []
    }
    assert read_summary(store, "gone.txt") is None
    store.put("urls/", b"")  # a folder marker some consoles create
    assert lambda_handler(_event(settings.bucket, "urls/"), None) == {"batchItemFailures": []}
    assert store.count(layout.MAPS) == 0


def _event(bucket: str, key: str, message_id: str | None = None) -> dict:
    body = s3_notification(bucket, key, "0", client("s3").meta.region_name)
    return {
        "Records": [
            {
                "messageId": message_id or str(uuid.uuid4()),
                "receiptHandle": "r",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                "awsRegion": "us-east-1",
            }
        ]
    }
