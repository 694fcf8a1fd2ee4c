"""The loaded index, kept across requests and refreshed when the manifest changes.

Requests take the current :class:`IndexSnapshot` once and search it to the end,
so a refresh that swaps in a new version never disturbs a request in flight.
The manifest's ETag is checked at most every ``refresh_s`` seconds, in a
background thread once a snapshot is loaded: requests keep answering from the
snapshot they have and never wait for a reload. A new version reads only the
segments it adds (segments are immutable) and shares the others with the
previous snapshot, so a swap holds the old segments plus the new ones only.
When the newest manifest cannot be loaded, the previous snapshot keeps serving
and the cache reports itself degraded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pixsearch.index.reader import IndexSnapshot, load_snapshot, manifest_etag
from pixsearch.search.errors import Unavailable
from pixsearch.storage import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexState:
    """What the cache knows, replaced as a whole on every check."""

    snapshot: IndexSnapshot | None = None
    checked_at: float | None = None  # monotonic time of the last manifest check
    loaded_at: float | None = None  # wall-clock time the snapshot was loaded
    stale: str | None = None  # why the snapshot is older than the newest published version
    failure: str | None = None  # why the last check could not load the newest version

    @property
    def problem(self) -> str | None:
        return self.failure or self.stale


class IndexCache:
    def __init__(
        self,
        store: ObjectStore,
        model_tag: str,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.model_tag = model_tag
        self.refresh_s = refresh_s
        self._clock = clock
        self._state = IndexState()
        self._refresh_lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        self._refresher_lock = threading.Lock()

    @property
    def state(self) -> IndexState:
        return self._state

    def current(self) -> IndexSnapshot:
        """The snapshot to answer a request from. Without one, the first load is waited
        for; with one, a due check runs in the background and this returns at once."""
        if self._state.snapshot is None:
            self.refresh_if_due()
        elif self._due(self._state):
            self._refresh_in_background()
        state = self._state
        if state.snapshot is None:
            raise Unavailable(state.problem or "no index loaded yet", code="index_unavailable")
        return state.snapshot

    def refresh_if_due(self, wait: bool = True) -> IndexState:
        """Check the manifest if due. Without a snapshot, callers wait for the one load
        (unless ``wait`` is False); with one, only the thread that wins the lock checks
        and the others go on with the snapshot they have."""
        if not self._due(self._state):
            return self._state
        blocking = wait and self._state.snapshot is None
        if not self._refresh_lock.acquire(blocking=blocking):
            return self._state
        try:
            if self._due(self._state):
                self._state = self._check(self._state)
            return self._state
        finally:
            self._refresh_lock.release()

    def wait_for_refresh(self, timeout_s: float | None = None) -> IndexState:
        """Wait for a background check in progress (if any) to finish."""
        refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout_s)
        return self._state

    def _refresh_in_background(self) -> None:
        with self._refresher_lock:
            if self._refresher is not None and self._refresher.is_alive():
                return
            self._refresher = threading.Thread(
                target=self.refresh_if_due, kwargs={"wait": False}, name="search-index-refresh"
            )
            self._refresher.daemon = True
            self._refresher.start()

    def _due(self, state: IndexState) -> bool:
        """Without a snapshot, every request checks (one HEAD) so the first index shows at once."""
        if state.snapshot is None or state.checked_at is None:
            return True
        return self._clock() - state.checked_at >= self.refresh_s

    def _check(self, state: IndexState) -> IndexState:
        now = self._clock()
        try:
            etag = manifest_etag(self.store, self.model_tag)
        except Exception as error:  # noqa: BLE001 - the store is down: keep serving what we have
            return self._failed(state, now, f"cannot read the index manifest: {error}")
        if etag is None:
            reason = f"no index for model {self.model_tag} yet (nothing has been indexed)"
            return self._failed(state, now, reason)
        if state.snapshot is not None and state.snapshot.etag == etag:
            return IndexState(state.snapshot, now, state.loaded_at, state.stale)
        started = time.perf_counter()
        try:
            snapshot = load_snapshot(self.store, self.model_tag, previous=state.snapshot)
        except Exception as error:  # noqa: BLE001 - a bad new version must not stop search
            return self._failed(state, now, f"cannot load index {self.model_tag}: {error}")
        log.info(
            "loaded index %s version %s: %d vectors in %d segments (%d kept) in %.0f ms",
            self.model_tag,
            snapshot.version,
            snapshot.vector_count,
            snapshot.segment_count,
            snapshot.reused_count,
            (time.perf_counter() - started) * 1000,
        )
        stale = snapshot.fallback_reason
        if stale:
            log.warning("index %s: %s", self.model_tag, stale)
        return IndexState(snapshot, now, time.time(), stale)

    @staticmethod
    def _failed(state: IndexState, now: float, reason: str) -> IndexState:
        if state.failure != reason:
            log.warning("%s%s", reason, "; serving the previous index" if state.snapshot else "")
        return IndexState(state.snapshot, now, state.loaded_at, state.stale, reason)
