"""A thread-safe LRU cache of text-query embeddings: a hit skips the model entirely."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class QueryCache:
    """Maps ``(model tag, query text)`` to its embedding; ``capacity=0`` disables caching."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_tag: str, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get((model_tag, text))
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end((model_tag, text))
            self.hits += 1
            return vector

    def put(self, model_tag: str, text: str, vector: np.ndarray) -> None:
        if self.capacity <= 0:
            return
        frozen = np.array(vector, dtype=np.float32, copy=True)
        frozen.setflags(write=False)
        with self._lock:
            self._entries[(model_tag, text)] = frozen
            self._entries.move_to_end((model_tag, text))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, int]:
        return {
            "size": len(self),
            "capacity": self.capacity,
            "hits": self.hits,
            "misses": self.misses,
        }
