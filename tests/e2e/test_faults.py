"""The whole pipeline with storage faults injected between it and the object store.

``pixsearch up --endpoint-url`` points the stack at a :class:`FaultProxy` in
front of the moto server that resets connections, loses responses after the
work is done and answers 503 SlowDown on a seeded fraction of S3 and SQS
requests. However the faults fall, every distinct image must end in the index
exactly once, nothing in a dead-letter queue, no stage stuck. The pollers poll
without waiting (``PIXSEARCH_POLL_WAIT_S=0``, as the test settings have it): a
high request rate, the kind that drains botocore's standard-mode retry quota.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from pixsearch import layout, status, topology
from pixsearch.config import Settings
from pixsearch.download.urlmap import read_summary
from pixsearch.index.reader import IndexNotFound, load_snapshot
from pixsearch.inference import ClipModel
from pixsearch.runtime.emulator import EmulatorProcess
from pixsearch.storage import ObjectStore
from tests.fixtures.faults import FAULT_KINDS, FaultProxy
from tests.fixtures.images import SHAPES, ImageServer, distinct_color, make_image
from tests.fixtures.stack import RunningStack

pytestmark = pytest.mark.e2e

# What is under test is pixsearch under faults, not the emulator behind the proxy.
EMULATOR_BACKENDS = ("moto",)

IMAGES = 30
LISTS = 3
SEED = 15


@pytest.fixture(params=[0.1, 0.3], ids=lambda rate: f"{rate:.0%}-faults")
def proxy(request: pytest.FixtureRequest, emulator: EmulatorProcess) -> Iterator[FaultProxy]:
    proxy = FaultProxy(emulator.endpoint_url, fault_rate=request.param, seed=SEED).start()
    yield proxy
    proxy.stop()


def indexed_keys(store: ObjectStore, model_tag: str) -> Counter[str]:
    """Every live row of the index, by image key (flat segments: the search is exhaustive)."""
    try:
        snapshot = load_snapshot(store, model_tag)
    except IndexNotFound:
        return Counter()
    if not snapshot.vector_count:
        return Counter()
    query = np.ones((1, snapshot.dim), dtype=np.float32)
    return Counter(hit.key for hit in snapshot.search(query, k=snapshot.vector_count)[0])


def settled(settings: Settings, store: ObjectStore, model_tag: str, want: int) -> bool:
    stages = status.queue_depths(settings)
    idle = all(depth["queued"] == depth["in_flight"] == 0 for depth in stages.values())
    summaries = all(read_summary(store, f"list-{n}.txt") is not None for n in range(LISTS))
    return idle and summaries and sum(indexed_keys(store, model_tag).values()) >= want


def describe(settings: Settings, store: ObjectStore, model_tag: str, stack: RunningStack) -> str:
    summaries = {n: read_summary(store, f"list-{n}.txt") is not None for n in range(LISTS)}
    return (
        f"pipeline did not settle: queues {status.queue_depths(settings)}, summaries {summaries}, "
        f"{sum(indexed_keys(store, model_tag).values())} indexed; the stack said:\n"
        + "".join(stack.output[-30:])
    )


def test_every_image_is_indexed_exactly_once_under_faults(
    proxy: FaultProxy,
    image_server: ImageServer,
    tiny_model: ClipModel,
    settings: Settings,
    store: ObjectStore,
):
    bodies = [make_image(distinct_color(n), shape=SHAPES[n % len(SHAPES)]) for n in range(IMAGES)]
    urls = [
        image_server.add_bytes(f"img/{n}.jpg", body, "image/jpeg") for n, body in enumerate(bodies)
    ]
    distinct = {hashlib.sha256(body).hexdigest() for body in bodies}
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": proxy.endpoint_url,
        "PYTHONUNBUFFERED": "1",
    }
    stack = RunningStack(env, "--endpoint-url", proxy.endpoint_url, timeout_s=120)
    try:
        for number in range(LISTS):  # overlapping lists: the same image comes by many paths
            chosen = urls[number * 5 :] + urls[: number * 5 + 3]
            store.put(f"urls/list-{number}.txt", "\n".join(chosen).encode())
        deadline = time.monotonic() + 150
        quiet = 0  # two settled looks in a row: queue counts are read one after the other
        while quiet < 2:
            assert time.monotonic() < deadline, describe(settings, store, tiny_model.tag, stack)
            time.sleep(1)
            quiet = quiet + 1 if settled(settings, store, tiny_model.tag, len(distinct)) else 0
    finally:
        output = stack.stop()
    assert stack.process.returncode == 0, output

    keys = indexed_keys(store, tiny_model.tag)
    assert {key.split("/")[-1].split(".")[0] for key in keys} == distinct
    assert set(keys.values()) == {1}, [key for key, n in keys.items() if n > 1]
    assert sorted(info.key for info in store.list(layout.IMAGES)) == sorted(keys)
    stages = status.queue_depths(settings)
    assert {name: depth["dead_letters"] for name, depth in stages.items()} == {
        spec.name: 0 for spec in topology.STAGES
    }
    assert all(proxy.faults[kind] >= 3 for kind in FAULT_KINDS), proxy.faults
