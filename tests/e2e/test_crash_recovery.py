"""The object store killed with SIGKILL in the middle of an ingest: every image indexed once."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pixsearch import topology
from pixsearch.config import Settings
from pixsearch.index.reader import load_snapshot
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.runtime.emulator import EmulatorProcess
from pixsearch.runtime.handlers import available_handlers
from pixsearch.storage import ObjectStore, client
from tests.fixtures.aws import KeptEmulator
from tests.fixtures.model import store_images

pytestmark = pytest.mark.e2e


@pytest.fixture
def emulator(kept_emulator: KeptEmulator) -> EmulatorProcess:
    """The test's bucket and queues live on a MiniStack this test can kill."""
    return kept_emulator.server


def test_a_crash_mid_ingest_loses_no_image_and_indexes_none_twice(
    tiny_model: ClipModel,
    settings: Settings,
    queues: dict[str, topology.QueueUrls],
    store: ObjectStore,
    kept_emulator: KeptEmulator,
):
    images = store_images(store, 12)
    # Shards written, their index messages waiting: the crash finds work in every queue.
    Dispatcher(settings, queues, {"embed": available_handlers()["embed"]}).drain()
    running = Dispatcher(settings, queues)
    running.start()
    images += store_images(store, 12, first=12)
    kept_emulator.crash()
    running.stop()

    kept_emulator.start()
    restarted = topology.ensure(
        client("s3"),
        client("sqs"),
        settings,
        visibility_timeout_s=settings.local_visibility_timeout_s,
    )  # as `pixsearch up` does at every start
    Dispatcher(settings, restarted).drain()

    snapshot = load_snapshot(store, tiny_model.tag)
    assert snapshot.vector_count == len(images)
    vectors = tiny_model.encode_images([Image.open(io.BytesIO(image.data)) for image in images])
    best = [found[0].key for found in snapshot.search(vectors, k=1)]
    assert best == [image.key for image in images]
    assert "after a crash" in kept_emulator.log
