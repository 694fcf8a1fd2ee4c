"""SearchService: one query in, the top-k images of the live index out.

One instance per process serves every request (Flask threads, Lambda container
reuse): the model loads once, the index snapshot and text-query embeddings are
cached, and the index is refreshed in place when its manifest changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from pixsearch.config import Settings, get_settings
from pixsearch.inference.model import ModelUnavailable
from pixsearch.search.errors import Unavailable
from pixsearch.search.image_links import ImageLinks
from pixsearch.search.query_cache import QueryCache
from pixsearch.search.query_images import QueryImages
from pixsearch.search.requests import SearchRequest
from pixsearch.search.responses import Health, SearchResponse, SearchResult
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.engines import open_store
from pixsearch.vectorstore.port import DimensionMismatch, StoreUnavailable

if TYPE_CHECKING:
    from pixsearch.inference import ClipModel

log = logging.getLogger(__name__)


class SearchService:
    def __init__(self, settings: Settings | None = None, store: ObjectStore | None = None) -> None:
        self.settings = settings or get_settings()
        self.store = store or ObjectStore.from_settings(self.settings)
        self.model_tag = self.settings.model_tag
        self.vectors = open_store(self.settings, self.store, self.model_tag)
        self.query_cache = QueryCache(self.settings.search_query_cache_size)
        self.links = ImageLinks(self.store)
        self.images = QueryImages(self.settings, self.store)
        self._created = time.perf_counter()
        self._model: ClipModel | None = None
        self._model_problem: str | None = None
        self._model_lock = threading.Lock()
        self._warmup_lock = threading.Lock()
        self._warmup: threading.Thread | None = None
        self._answered = False

    def search(self, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        query = self.embed(request)  # first, so a bad query image is a 4xx even with no index
        text = request.text if request.mode == "hybrid" else None
        try:
            found = self.vectors.search(query, request.k, request.where, text)
        except (StoreUnavailable, DimensionMismatch) as error:
            raise Unavailable(str(error), code="index_unavailable") from error
        results = [
            SearchResult(
                key=hit.key,
                score=hit.score,
                source_url=hit.meta.source_url,
                image_url=self.links.url(hit.key),
                width=hit.meta.width,
                height=hit.meta.height,
                list_name=hit.meta.list_name,
                source_domain=hit.meta.source_domain,
                bytes=hit.meta.bytes,
                fetched_at=hit.meta.fetched_at,
                caption=hit.meta.caption,
            )
            for hit in found.hits
            if request.min_score is None or hit.score >= request.min_score
        ]
        took_ms = (time.perf_counter() - started) * 1000
        if not self._answered:
            self._answered = True
            log.info(
                "cold start: first answer %.0f ms after the service was created",
                (time.perf_counter() - self._created) * 1000,
            )
            threading.Thread(
                target=self._load_image_encoder, name="search-image-encoder", daemon=True
            ).start()
        return SearchResponse(
            results=results,
            model=self.model_tag,
            index_version=found.version,
            took_ms=took_ms,
            engine=self.vectors.engine,
        )

    def embed(self, request: SearchRequest) -> np.ndarray:
        """The query's embedding; text queries come from the LRU cache when they can."""
        if request.text is not None:
            cached = self.query_cache.get(self.model_tag, request.text)
            if cached is not None:
                return cached
            with self._encoder_problems():
                vector = self.model().encode_texts([request.text])[0]
            self.query_cache.put(self.model_tag, request.text, vector)
            return vector
        model = self.model()
        image = self.images.load(request, model.input_size)
        with self._encoder_problems():
            return model.encode_images([image])[0]

    @contextmanager
    def _encoder_problems(self) -> Iterator[None]:
        """An encoder that cannot load on first use is :class:`Unavailable`, as the model is."""
        try:
            yield
        except ModelUnavailable as error:
            raise Unavailable(str(error), code="model_unavailable") from error

    def model(self) -> ClipModel:
        """The CLIP model, loaded on first use; :class:`Unavailable` if it cannot be."""
        if self._model is not None:
            return self._model
        with self._model_lock:
            if self._model is None:
                started = time.perf_counter()
                from pixsearch.inference import load_model

                try:
                    self._model = load_model(self.settings)
                except ModelUnavailable as error:
                    self._model_problem = str(error)
                    raise Unavailable(str(error), code="model_unavailable") from error
                self._model_problem = None
                log.info(
                    "cold start: model %s loaded on %s in %.0f ms",
                    self._model.tag,
                    self._model.runtime,
                    (time.perf_counter() - started) * 1000,
                )
        return self._model

    def warm(self) -> None:
        """Load model (its text encoder) and index now (cold start), logging what each took.

        The index downloads in a second thread while the model loads. The image
        encoder waits for the first answer (:meth:`_load_image_encoder`):
        text queries, the common first query, do not need it.
        """
        started = time.perf_counter()
        index = threading.Thread(target=self.vectors.refresh, name="search-index-load")
        index.start()
        try:
            model = self.model()
            loading = time.perf_counter()
            with self._encoder_problems():
                model.load_towers("text")
            log.info(
                "cold start: text encoder loaded in %.0f ms", (time.perf_counter() - loading) * 1000
            )
        except Unavailable as error:
            log.warning("warm-up: %s", error.message)
        index.join()
        described = self.vectors.describe()
        if described.version is None:
            log.warning("warm-up: %s", described.problem)
        log.info("cold start: warm-up took %.0f ms", (time.perf_counter() - started) * 1000)

    def _load_image_encoder(self) -> None:
        """Load the image encoder (after the first answer, so query images need not wait)."""
        started = time.perf_counter()
        try:
            with self._encoder_problems():
                self.model().load_towers("image")
        except Unavailable as error:
            log.warning("image encoder: %s", error.message)
            return
        log.info("image encoder loaded in %.0f ms", (time.perf_counter() - started) * 1000)

    def start_warmup(self) -> threading.Thread:
        """Warm up in a background thread (once), so a server can answer /health meanwhile."""
        with self._warmup_lock:
            if self._warmup is None:
                self._warmup = threading.Thread(target=self.warm, name="search-warmup", daemon=True)
                self._warmup.start()
            return self._warmup

    def health(self) -> Health:
        if self._model is None:
            self.start_warmup()
        state = self.vectors.describe()
        if state.version is None:
            status, reason = "unavailable", state.problem or "the index is loading"
        elif self._model is None:
            status, reason = "unavailable", self._model_problem or "the model is loading"
        elif state.problem:
            status, reason = "degraded", state.problem
        else:
            status, reason = "ok", None
        wall, mono = time.time(), time.monotonic()
        return Health(
            status=status,
            reason=reason,
            model=self.model_tag,
            model_loaded=self._model is not None,
            index_version=state.version,
            vector_count=state.vector_count,
            segment_count=state.segment_count,
            engine=state.engine,
            index_age_s=round(wall - state.loaded_at, 3) if state.loaded_at else None,
            checked_age_s=round(mono - state.checked_at, 3) if state.checked_at else None,
            query_cache=self.query_cache.stats(),
        )
