"""Tiered (size-ratio) compaction: merge only segments of similar size, within limits.

Segments fall into tiers by live row count (a tier spans a factor of ``fanout``).
When a tier holds ``fanout`` segments they merge into one of the next tier, so each
vector is rewritten about log_fanout(N) times in its life and a run touches the
batch plus at most one merge. A segment too big to merge inside the memory limit is
sealed; it is rewritten alone only once most of its rows are tombstoned. Merges of
IVF segments move inverted lists (see :func:`pixsearch.index.segment.merge`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pixsearch.config import Settings
from pixsearch.index import quantizer as quantizers
from pixsearch.index import segment as segments
from pixsearch.index.manifest import QuantizerEntry, SegmentEntry
from pixsearch.storage import ObjectStore

log = logging.getLogger(__name__)

MERGE_MEMORY_FACTOR = 4
"""Peak memory of a merge over the size of its inputs: the inputs as read and as FAISS
indexes, the output, and its serialized copy (measured by bench/index.py)."""


@dataclass(frozen=True)
class Limits:
    """What one index run may use and do; from :class:`~pixsearch.config.Settings`."""

    flat_max: int = 50_000
    fanout: int = 4
    nlist: int = 1024
    memory_mb: int = 3008
    time_s: float = 300.0
    grace_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            flat_max=settings.index_flat_max,
            fanout=settings.index_compact_segments,
            nlist=settings.index_ivf_nlist,
            memory_mb=settings.index_memory_mb,
            time_s=settings.index_time_s,
            grace_s=settings.index_grace_s,
        )

    @property
    def merge_bytes_max(self) -> int:
        """The most segment bytes one merge may read."""
        return self.memory_mb * 2**20 // MERGE_MEMORY_FACTOR


def tier(entry: SegmentEntry, fanout: int) -> int:
    return int(math.log(max(entry.live, 1), fanout))


def plan(entries: Sequence[SegmentEntry], limits: Limits) -> list[SegmentEntry] | None:
    """The next segments to merge into one, or None when every tier is below ``fanout``."""
    for entry in entries:
        if entry.live == 0:
            return [entry]  # nothing left: drop it
    mergeable = [e for e in entries if e.bytes * limits.fanout <= limits.merge_bytes_max]
    tiers: dict[int, list[SegmentEntry]] = {}
    for entry in mergeable:
        tiers.setdefault(tier(entry, limits.fanout), []).append(entry)
    for _, members in sorted(tiers.items()):
        if len(members) >= limits.fanout:
            group: list[SegmentEntry] = []
            for entry in sorted(members, key=lambda e: e.live):
                if sum(e.bytes for e in group) + entry.bytes > limits.merge_bytes_max:
                    break
                group.append(entry)
            if len(group) >= 2:
                return group
    for entry in entries:
        if entry.dead * 2 > entry.count and entry.bytes <= limits.merge_bytes_max:
            return [entry]  # mostly tombstoned: rewrite it without the dead rows
    return None


def merge(
    store: ObjectStore,
    model_tag: str,
    group: list[SegmentEntry],
    *,
    dim: int,
    tombstone_hashes: np.ndarray,
    quantizer: QuantizerEntry | None,
    limits: Limits,
) -> tuple[SegmentEntry | None, QuantizerEntry | None]:
    """Merge ``group`` without its tombstoned rows; the result (None if no row is left)
    and the index's template (trained here the first time an IVF segment is needed)."""
    loaded = [segments.load(store, model_tag, entry, dim) for entry in group]
    parts = [
        (segment, np.flatnonzero(~np.isin(segment.hashes, tombstone_hashes))) for segment in loaded
    ]
    kept = sum(len(keep) for _, keep in parts)
    template = None
    if kept > limits.flat_max or any(entry.kind == "ivf" for entry in group):
        if quantizer is None:
            template, data = quantizers.train(segments.flat_vectors(parts), limits.nlist)
            quantizers.save(store, model_tag, template[0], data)
            log.info("trained the IVF template of %s: %s", model_tag, template[0].factory)
        else:
            template = quantizers.load(store, model_tag, quantizer)
    built = segments.merge(parts, flat_max=limits.flat_max, template=template)
    del loaded, parts
    entry = None
    if built is not None:
        entry = segments.save(store, model_tag, built)
        log.info(
            "merged %d segments of %s (%d rows) into %s %s",
            len(group),
            model_tag,
            sum(entry.count for entry in group),
            built.entry.kind,
            built.entry.id,
        )
    return entry, template[0] if template else quantizer
