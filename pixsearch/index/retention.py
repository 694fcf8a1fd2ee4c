"""Retention: index objects that no kept manifest references go, after a grace period.

Kept manifests are the current one and the :data:`~pixsearch.index.manifest.RECOVERY_DEPTH`
newest archived versions (recovery may fall back to any of them); everything they name
(segments with their rows and key hashes, the IVF template, the shard set) stays. Any
other object under ``segments/``, ``quantizers/``, ``shardsets/`` and ``manifests/``
older than the grace period is deleted: long enough that a search instance that began
loading an older version, or an index run that wrote a segment it has not published
yet, still finds its objects. Embedding shards are never collected: they are the
source of truth ``pixsearch index rebuild`` reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.index import manifest as manifests
from pixsearch.index.manifest import CorruptIndex, Manifest
from pixsearch.storage import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

COLLECTED = ("segments/", "quantizers/", "shardsets/", "manifests/")


@dataclass(frozen=True)
class Plan:
    """What a collection deletes (or, dry, would delete) and what it keeps."""

    garbage: tuple[ObjectInfo, ...]
    kept: int
    young: int  # unreferenced but inside the grace period

    @property
    def garbage_bytes(self) -> int:
        return sum(info.size for info in self.garbage)


def referenced_keys(manifest: Manifest) -> set[str]:
    """Every object key ``manifest`` needs."""
    tag = manifest.model_tag
    keys = {layout.manifest_version_key(tag, manifest.version)}
    for entry in manifest.segments:
        keys |= {
            layout.segment_key(tag, entry.id),
            layout.segment_rows_key(tag, entry.id),
            layout.segment_keys_key(tag, entry.id),
        }
    if manifest.quantizer is not None:
        keys.add(layout.quantizer_key(tag, manifest.quantizer.id))
    if manifest.shard_set is not None:
        keys.add(layout.shard_set_key(tag, manifest.shard_set.id))
    return keys


def plan(store: ObjectStore, model_tag: str, *, grace_s: float) -> Plan:
    """The objects a collection would delete now. :class:`CorruptIndex` (and nothing to
    delete) if the current manifest does not validate: recovery may need anything."""
    current, etag = manifests.read(store, model_tag)
    if etag is None:
        return Plan((), 0, 0)
    kept_manifests = [current]
    for version in manifests.archived_versions(store, model_tag)[: manifests.RECOVERY_DEPTH]:
        try:
            kept_manifests.append(manifests.read_version(store, model_tag, version))
        except (CorruptIndex, KeyError):
            continue  # names nothing we can trust; its objects age out like any other
    keep = set().union(*(referenced_keys(manifest) for manifest in kept_manifests))
    now = datetime.now(UTC)
    prefix = layout.index_prefix(model_tag)
    garbage, kept, young = [], 0, 0
    for info in store.list(prefix):
        if not info.key.removeprefix(prefix).startswith(COLLECTED) or info.key in keep:
            kept += 1
        elif info.last_modified and (now - info.last_modified).total_seconds() < grace_s:
            young += 1
        else:
            garbage.append(info)
    return Plan(tuple(garbage), kept, young)


def collect(store: ObjectStore, model_tag: str, *, grace_s: float) -> Plan:
    """Delete what :func:`plan` finds; returns the plan carried out."""
    found = plan(store, model_tag, grace_s=grace_s)
    for info in found.garbage:
        store.delete(info.key)
    if found.garbage:
        log.info(
            "index %s: deleted %d unreferenced objects (%d bytes)",
            model_tag,
            len(found.garbage),
            found.garbage_bytes,
        )
    return found


def command(model_tag: str | None, dry_run: bool, settings: Settings) -> int:
    """``pixsearch index gc``: list (and unless ``dry_run``, delete) unreferenced objects."""
    tag = model_tag or settings.model_tag
    store = ObjectStore.from_settings(settings)
    grace_s = settings.index_grace_s
    found = (plan if dry_run else collect)(store, tag, grace_s=grace_s)
    for info in found.garbage:
        print(f"{'would delete' if dry_run else 'deleted'} {info.key} ({info.size} bytes)")
    verb = "would free" if dry_run else "freed"
    print(
        f"index {tag}: {len(found.garbage)} unreferenced objects, {verb} "
        f"{found.garbage_bytes} bytes; {found.kept} referenced, {found.young} younger "
        f"than the grace period ({grace_s:g} s)"
    )
    return 0
