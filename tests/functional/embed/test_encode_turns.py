"""Concurrent embed batches in one process take turns to encode."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pixsearch.config import Settings
from pixsearch.embed.batch import embed_events
from pixsearch.events import ObjectEvent
from pixsearch.inference import ClipModel
from pixsearch.storage import ObjectStore
from tests.fixtures.model import store_images


class OverlapWatch:
    """The model, counting how many of its encodes run at the same time."""

    def __init__(self, model: ClipModel) -> None:
        self.model, self.running, self.most = model, 0, 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def encode_pixels(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.2)
            return self.model.encode_pixels(batch)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.parametrize("turns", [1, 2])
def test_two_batches_encode_at_most_the_set_number_at_once(
    turns: int, tiny_model: ClipModel, store: ObjectStore, settings: Settings
):
    images = store_images(store, 6)
    events = [
        ObjectEvent(f"m{n}", store.bucket, image.key, "ObjectCreated:Put")
        for n, image in enumerate(images)
    ]
    chosen = settings.model_copy(update={"embed_parallel_encodes": turns, "embed_batch_size": 1})
    watch = OverlapWatch(tiny_model)
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda half: embed_events(half, store, watch, chosen), [events[:3], events[3:]]
            )
        )
    assert [result.embedded for result in results] == [3, 3]
    assert watch.most == turns
