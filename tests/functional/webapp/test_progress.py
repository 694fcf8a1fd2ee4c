"""Pipeline progress of a list read from a real bucket that the real stages filled."""

from __future__ import annotations

from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from pixsearch.webui.progress import ProgressReader
from tests.fixtures.images import ImageServer


def test_counts_follow_the_list_through_every_stage_and_a_deleted_image(
    image_server: ImageServer, tiny_model: ClipModel, store: ObjectStore, pipeline: Dispatcher
):
    reader = ProgressReader(store, tiny_model.tag)
    urls = image_server.add_images(4)
    same_as_first = image_server.add_image("copy.jpg", color=(37, 29, 53), shape="circle")
    assert reader.list_names() == []

    store.put("urls/trip.txt", "\n".join([*urls, same_as_first]).encode())
    waiting = reader.list_progress("trip.txt")
    assert (waiting.started, waiting.processed, waiting.images) == (False, 0, 0)
    assert reader.list_names() == ["trip.txt"]

    pipeline.drain()
    done = reader.list_progress("trip.txt")
    assert (done.total, done.processed, done.downloaded, done.duplicates) == (5, 5, 5, 1)
    assert (done.images, done.embedded, done.indexed, done.failed) == (4, 4, 4, 0)
    assert done.complete
    assert done.summary is not None and done.summary["urls"] == 5
    assert reader.index_state().vector_count == 4

    image_key = next(row.key for row in reader.map_rows("trip.txt") if row.key)
    store.delete(image_key)
    pipeline.drain()
    after = reader.list_progress("trip.txt")
    assert (after.embedded, after.indexed) == (4, 3)
    assert not after.complete
