"""Lambda entry point of the index stage: new shards and ``images/`` removals -> index.

A shard that cannot be read fails its own record; everything else in the batch
goes into one manifest update per model tag, or into the configured vector store
(``PIXSEARCH_VECTOR_STORE=lancedb``). An image removal is a tombstone in
every model's index (during a model change two indexes live side by side).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pixsearch import layout, shards
from pixsearch.config import Settings, get_settings
from pixsearch.events import ObjectEvent, process_batch
from pixsearch.index import capacity, retention, update
from pixsearch.index.compaction import Limits
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.engines import open_store

log = logging.getLogger(__name__)

COLLECT_EVERY = 16  # versions between collections of unreferenced index objects


def index_events(
    events: Sequence[ObjectEvent], store: ObjectStore, settings: Settings
) -> dict[str, BaseException]:
    """Fold the batch's shards and removals into the index; failures by message id."""
    failures: dict[str, BaseException] = {}
    by_tag: dict[str, tuple[list[shards.Shard], list[str], list[str]]] = {}

    def work(tag: str) -> tuple[list[shards.Shard], list[str], list[str]]:
        return by_tag.setdefault(tag, ([], [], []))

    removal_tags: list[str] | None = None
    for event in events:
        if event.is_removal and event.key.startswith(layout.IMAGES):
            if removal_tags is None:
                removal_tags = index_tags(store) | {settings.model_tag}
            for tag in sorted(removal_tags):
                found, removed, message_ids = work(tag)
                removed.append(event.key)
                message_ids.append(event.message_id)
            continue
        try:
            tag, shard_id = layout.parse_shard_key(event.key)
        except ValueError:
            log.info("index ignores %s %s", event.event_name, event.key)
            continue
        if not event.is_creation:
            continue
        try:
            shard = shards.read(store, tag, shard_id)
        except Exception as error:  # noqa: BLE001 - the record fails, its neighbours don't
            log.warning("cannot index %s: %s", event.key, error)
            failures[event.message_id] = error
            continue
        found, removed, message_ids = work(tag)
        found.append(shard)
        message_ids.append(event.message_id)

    def image_exists(key: str) -> bool:
        return store.head(key) is not None

    limits = Limits.from_settings(settings)
    for tag, (found, removed, message_ids) in by_tag.items():
        if settings.vector_store != "faiss":
            failures.update(_into_vector_store(settings, store, tag, found, removed, message_ids))
            continue
        try:
            published = update.apply(
                store, tag, found, removed, limits=limits, image_exists=image_exists
            )
        except Exception as error:  # noqa: BLE001 - this tag's records are retried, others not
            log.exception("index update of %s failed", tag)
            failures.update(dict.fromkeys(message_ids, error))
            continue
        warning = capacity.search_memory_warning(published, settings.search_memory_mb)
        if warning:
            log.warning(warning)
        if published.version % COLLECT_EVERY == 0:
            try:
                retention.collect(store, tag, grace_s=limits.grace_s)
            except Exception:  # noqa: BLE001 - the next collection tries again
                log.exception("index %s: collecting unreferenced objects failed", tag)
    return failures


def _into_vector_store(
    settings: Settings,
    store: ObjectStore,
    tag: str,
    found: list[shards.Shard],
    removed: list[str],
    message_ids: list[str],
) -> dict[str, BaseException]:
    """The batch into the configured engine's store (``PIXSEARCH_VECTOR_STORE``)."""
    try:
        vectors = open_store(settings, store, tag)
        if found:
            vectors.add(found)
        if removed:
            vectors.remove(removed)
    except Exception as error:  # noqa: BLE001 - this tag's records are retried, others not
        log.exception("index update of %s failed", tag)
        return dict.fromkeys(message_ids, error)
    return {}


def index_tags(store: ObjectStore) -> set[str]:
    """The model tags that have an index in the bucket (an image removal concerns all)."""
    pages = store.s3.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=layout.INDEX, Delimiter="/"
    )
    return {
        common["Prefix"].removeprefix(layout.INDEX).rstrip("/")
        for page in pages
        for common in page.get("CommonPrefixes", [])
    }


def handle(events: Sequence[ObjectEvent]) -> Mapping[str, BaseException]:
    settings = get_settings()
    return index_events(events, ObjectStore.from_settings(settings), settings)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_batch(event, context, handle)
