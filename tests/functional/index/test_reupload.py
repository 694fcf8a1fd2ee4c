"""An image deleted and uploaded again, byte for byte, through the real embed and index stages."""

from __future__ import annotations

import time

from pixsearch.config import Settings
from pixsearch.index import manifest as manifests
from pixsearch.index.reader import load_snapshot
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from tests.fixtures.model import store_images


def test_an_image_deleted_and_uploaded_again_with_the_same_bytes_is_live_again(
    tiny_model: ClipModel, settings: Settings, store: ObjectStore, pipeline: Dispatcher
) -> None:
    image = store_images(store, 1)[0]
    pipeline.drain()
    store.delete(image.key)
    pipeline.drain()
    assert image.key in manifests.read(store, settings.model_tag)[0].tombstones
    time.sleep(1.1)  # Last-Modified has a resolution of one second
    store.put(
        image.key, image.data, content_type="image/png", metadata={"source-url": image.source_url}
    )
    pipeline.drain()
    current = manifests.read(store, settings.model_tag)[0]
    assert image.key not in current.tombstones
    query = tiny_model.encode_texts(["anything"])
    assert [hit.key for hit in load_snapshot(store, settings.model_tag).search(query, k=5)[0]] == [
        image.key
    ]
