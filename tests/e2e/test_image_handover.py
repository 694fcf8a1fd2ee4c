"""A list through the local runtime's three stages: no image is read back from the bucket."""

from __future__ import annotations

import pytest

from pixsearch import layout
from pixsearch.index.reader import load_snapshot
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from tests.fixtures.images import ImageServer
from tests.fixtures.stores import image_reads

pytestmark = pytest.mark.e2e


def test_the_embed_stage_reads_no_image_the_download_stage_just_stored(
    image_server: ImageServer, tiny_model: ClipModel, store: ObjectStore, pipeline: Dispatcher
):
    urls = image_server.add_images(8)
    with image_reads(store) as reads:
        store.put("urls/handover.txt", "\n".join(urls).encode())
        pipeline.drain()
    assert reads == []
    assert store.count(layout.IMAGES) == 8
    assert load_snapshot(store, tiny_model.tag).vector_count == 8


def test_with_the_handover_off_every_image_is_read_back(
    image_server: ImageServer,
    tiny_model: ClipModel,
    store: ObjectStore,
    pipeline: Dispatcher,
):
    urls = image_server.add_images(3)
    pipeline.settings = pipeline.settings.model_copy(update={"local_image_cache_mb": 0})
    with image_reads(store) as reads:
        store.put("urls/no-handover.txt", "\n".join(urls).encode())
        pipeline.drain()
    assert len(reads) == 3
    assert load_snapshot(store, tiny_model.tag).vector_count == 3
