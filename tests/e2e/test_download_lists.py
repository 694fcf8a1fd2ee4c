"""End to end on moto server: lists uploaded to urls/ flow through S3 events, SQS and the
local runtime into images, URL maps with one row per input line, and embed-queue events."""

from __future__ import annotations

import gzip
import io
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pixsearch import layout, topology
from pixsearch.config import Settings
from pixsearch.download.handler import lambda_handler
from pixsearch.download.urlmap import read_maps, read_summary
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from tests.fixtures.aws import notification_keys, receive_all
from tests.fixtures.images import ImageServer

pytestmark = pytest.mark.e2e


def _wait_for_summaries(store: ObjectStore, names: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(read_summary(store, name) is not None for name in names):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no summary for {names} within {timeout_s}s")


def test_uploaded_lists_yield_images_and_one_map_row_per_line(
    image_server: ImageServer,
    settings: Settings,
    queues: dict[str, topology.QueueUrls],
    store: ObjectStore,
) -> None:
    shared, *jpegs = image_server.add_images(4)
    pngs = image_server.add_images(2, fmt="PNG", prefix="png")
    jsonl_lines = [json.dumps({"url": u, "caption": f"photo {i}"}) for i, u in enumerate(jpegs)]
    jsonl_lines += [json.dumps({"url": shared}), json.dumps({"url": image_server.url("nope")})]
    jsonl_lines += ["{oops", json.dumps({"url": "http://169.254.169.254/latest/"})]
    parquet = io.BytesIO()
    pq.write_table(pa.table({"url": [*pngs, shared, None]}), parquet)

    runtime = Dispatcher(settings, queues, handlers={"download": lambda_handler})
    runtime.start()
    try:
        store.put("urls/web.jsonl.gz", gzip.compress("\r\n".join(jsonl_lines).encode()))
        store.put("urls/more.parquet", parquet.getvalue())
        _wait_for_summaries(store, ["web.jsonl.gz", "more.parquet"])
    finally:
        runtime.stop()

    web = [row for m in read_maps(store, "web.jsonl.gz") for row in m.rows]
    assert [row.line for row in web] == list(range(1, len(jsonl_lines) + 1))
    assert [row.error for row in web if row.status == "failed"] == [
        "http_404",
        "bad_row",
        "blocked_address",
    ]
    more = [row for m in read_maps(store, "more.parquet") for row in m.rows]
    assert len(more) == 4 and more[-1].error == "missing_url"
    assert [row.caption for row in web[:3]] == ["photo 0", "photo 1", "photo 2"]

    stored = {row.key for row in web + more if row.status != "failed"}
    assert len(stored) == 6
    assert sorted(info.key for info in store.list(layout.IMAGES)) == sorted(stored)
    statuses = [row.status for row in web + more if row.url == shared]
    assert sorted(statuses) == ["duplicate", "ok"]

    assert set(notification_keys(receive_all(queues["embed"].queue))) == stored
    assert runtime.stats["download"].failed_records == 0
