"""One embed run: a batch of image events -> one shard, with per-record failures.

Fetching, decoding and preprocessing run in a small thread pool (Pillow and
botocore release the GIL) while the model encodes the previous chunk, so the
model runtime's CPU threads stay busy. Concurrent batches in one process (the
local runtime runs two) take turns to encode (``embed_parallel_encodes``), so
they do not run more model threads than there are cores.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pixsearch import images, layout, recent_images, shards
from pixsearch.config import Settings
from pixsearch.events import ObjectEvent
from pixsearch.inference import ClipModel
from pixsearch.origin import ImageOrigin
from pixsearch.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

PREPARE_THREADS = 4


@dataclass(frozen=True)
class Prepared:
    """An image ready for the model, the reason it is not, or neither (image gone)."""

    event: ObjectEvent
    row: shards.ShardRow | None = None
    pixels: np.ndarray | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class EmbedResult:
    shard_id: str | None
    embedded: int
    failures: Mapping[str, BaseException]


def embed_events(
    events: Sequence[ObjectEvent], store: ObjectStore, model: ClipModel, settings: Settings
) -> EmbedResult:
    """Embed the images the events name and write them as one shard.

    A record whose image cannot be decoded fails alone; an image deleted
    since its event is skipped (its removal event will follow).
    """
    wanted = _unique_images(events)
    carriers: dict[str, list[str]] = {}
    for event in events:
        carriers.setdefault(event.key, []).append(event.message_id)
    failures: dict[str, BaseException] = {}
    rows: list[shards.ShardRow] = []
    chunks: list[np.ndarray] = []
    for ready in _chunks(_prepare_all(wanted, store, model, settings), settings.embed_batch_size):
        for item in ready:
            if item.error is not None:
                log.warning("cannot embed %s: %s", item.event.key, item.error)
                failures.update(dict.fromkeys(carriers[item.event.key], item.error))
        good = [item for item in ready if item.pixels is not None and item.row is not None]
        if good:
            batch = np.stack([item.pixels for item in good])
            with encode_slots(parallel_encodes(settings)):
                chunks.append(model.encode_pixels(batch))
            rows.extend(item.row for item in good)
    if not rows:
        return EmbedResult(None, 0, failures)
    vectors = np.concatenate(chunks)
    identifier = shards.write(store, model.tag, rows, vectors)
    log.info("embedded %d images into shard %s/%s", len(rows), model.tag, identifier)
    return EmbedResult(identifier, len(rows), failures)


def parallel_encodes(settings: Settings, cores: int | None = None) -> int:
    """How many encodes this process runs at once: the setting, or cores // model threads."""
    if settings.embed_parallel_encodes:
        return settings.embed_parallel_encodes
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // settings.torch_threads)


@lru_cache(maxsize=4)
def encode_slots(count: int) -> threading.BoundedSemaphore:
    """The process-wide turns to encode, ``count`` at a time."""
    return threading.BoundedSemaphore(count)


def _unique_images(events: Sequence[ObjectEvent]) -> list[ObjectEvent]:
    """Creation events under ``images/``, one per key (duplicates in a batch embed once)."""
    seen: dict[str, ObjectEvent] = {}
    for event in events:
        if event.is_creation and event.key.startswith(layout.IMAGES):
            seen.setdefault(event.key, event)
        else:
            log.info("embed ignores %s %s", event.event_name, event.key)
    return list(seen.values())


def _prepare_all(
    events: list[ObjectEvent], store: ObjectStore, model: ClipModel, settings: Settings
) -> Iterator[Prepared]:
    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool:
        yield from pool.map(lambda event: _prepare(event, store, model, settings), events)


def _prepare(
    event: ObjectEvent, store: ObjectStore, model: ClipModel, settings: Settings
) -> Prepared:
    try:
        data, info = recent_images.read(store, event.key)
    except ObjectNotFound:
        log.info("image %s is gone; skipping", event.key)
        return Prepared(event)
    except Exception as error:  # noqa: BLE001 - the record fails, its neighbours don't
        return Prepared(event, error=error)
    try:
        decoded = images.decode(
            data, max_pixels=settings.download_max_pixels, resized_to=model.input_size
        )
        pixels = model.preprocess(decoded.image)
    except Exception as error:  # noqa: BLE001 - the record fails, its neighbours don't
        return Prepared(event, error=error)
    origin = ImageOrigin.from_metadata(info.metadata)
    row = shards.ShardRow(
        key=event.key,
        etag=info.etag,
        modified=info.last_modified.isoformat() if info.last_modified else "",
        source_url=origin.source_url,
        width=decoded.width,
        height=decoded.height,
        list_name=origin.list_name,
        fetched_at=origin.fetched_at,
        caption=origin.caption,
        bytes=len(data),
    )
    return Prepared(event, row=row, pixels=pixels)


def _chunks(items: Iterator[Prepared], size: int) -> Iterator[list[Prepared]]:
    chunk: list[Prepared] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
