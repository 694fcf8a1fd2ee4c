"""MANIFEST.json: the one mutable object of an index, naming everything that is live.

It lists the immutable segments (with checksums, counts and FAISS parameters), the
index's shared IVF template, the shards already folded in (so none is counted
twice: recent ones inline, older ones in an immutable shard-set object it names),
and the tombstoned image keys with the time of their removal. It carries a checksum
of its own content, so a damaged manifest is refused rather than half-read.
Publication is ``IfMatch`` on the ETag that was read; each published version is also
kept under ``manifests/`` for recovery.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from pixsearch import layout
from pixsearch.storage import ObjectNotFound, ObjectStore

FORMAT = 2
RECOVERY_DEPTH = 10  # archived versions tried, newest first, when the current one is refused

T = TypeVar("T")
log = logging.getLogger(__name__)
KINDS = ("flat", "ivf")


class CorruptIndex(ValueError):
    """A manifest or segment that fails validation (checksums, dims, counts)."""


@dataclass(frozen=True)
class SegmentEntry:
    id: str
    count: int
    kind: str
    factory: str
    index_sha256: str
    rows_sha256: str
    keys_sha256: str
    quantizer: str = ""  # the IVF template it was built from ("" for flat)
    params: dict[str, int] = field(default_factory=dict)
    bytes: int = 0  # size of the serialized FAISS index
    index_etag: str = ""  # the store's ETag of that object: a HEAD tells it was replaced
    dead: int = 0  # rows whose key is tombstoned (dropped when the segment is merged)

    @property
    def live(self) -> int:
        return self.count - self.dead


@dataclass(frozen=True)
class QuantizerEntry:
    """The index's trained, empty IVF index: every IVF segment starts as a copy of it."""

    id: str
    sha256: str
    factory: str
    nlist: int
    nprobe: int  # calibrated on the training sample; each IVF segment carries its own


@dataclass(frozen=True)
class ShardSetEntry:
    """An immutable object listing shard ids folded in before the inline ones."""

    id: str
    sha256: str
    count: int


@dataclass(frozen=True)
class Manifest:
    model_tag: str
    dim: int = 0
    version: int = 0
    segments: tuple[SegmentEntry, ...] = ()
    shards: frozenset[str] = frozenset()  # folded in since ``shard_set`` was written
    tombstones: dict[str, float] = field(default_factory=dict)  # key -> removal (unix s)
    quantizer: QuantizerEntry | None = None
    shard_set: ShardSetEntry | None = None

    @property
    def vector_count(self) -> int:
        return sum(segment.live for segment in self.segments)

    def to_json(self) -> bytes:
        body = self._body()
        body["checksum"] = _checksum(body)
        return json.dumps(body, indent=1).encode()

    def next(self, **changes: Any) -> Manifest:
        return replace(self, version=self.version + 1, **changes)

    def _body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_tag": self.model_tag,
            "dim": self.dim,
            "version": self.version,
            "vector_count": self.vector_count,
            "segment_count": len(self.segments),
            "segments": [vars(segment) for segment in self.segments],
            "quantizer": vars(self.quantizer) if self.quantizer else None,
            "shard_set": vars(self.shard_set) if self.shard_set else None,
            "shards": sorted(self.shards),
            "tombstones": dict(sorted(self.tombstones.items())),
        }


def parse(data: bytes, model_tag: str) -> Manifest:
    """A validated manifest; :class:`CorruptIndex` naming what is wrong otherwise."""
    try:
        body = json.loads(data)
        checksum = body.pop("checksum")
        if checksum != _checksum(body):
            raise CorruptIndex("manifest checksum does not match its content")
        if body["format"] != FORMAT:
            raise CorruptIndex(
                f"manifest format {body['format']!r} is not {FORMAT}; "
                "`pixsearch index rebuild` makes a current one from the shards"
            )
        manifest = Manifest(
            model_tag=body["model_tag"],
            dim=int(body["dim"]),
            version=int(body["version"]),
            segments=tuple(SegmentEntry(**segment) for segment in body["segments"]),
            shards=frozenset(body["shards"]),
            tombstones={str(key): float(at) for key, at in body["tombstones"].items()},
            quantizer=QuantizerEntry(**body["quantizer"]) if body["quantizer"] else None,
            shard_set=ShardSetEntry(**body["shard_set"]) if body["shard_set"] else None,
        )
    except CorruptIndex:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CorruptIndex(f"manifest unreadable ({type(error).__name__}: {error})") from None
    if manifest.model_tag != model_tag:
        raise CorruptIndex(f"manifest is for {manifest.model_tag!r}, not {model_tag!r}")
    if manifest.vector_count != body["vector_count"] or len(manifest.segments) != body.get(
        "segment_count"
    ):
        raise CorruptIndex("manifest counts disagree with its segments")
    for segment in manifest.segments:
        if segment.kind not in KINDS or not 0 <= segment.dead <= segment.count:
            raise CorruptIndex(f"segment {segment.id}: bad kind or counts")
        if segment.quantizer and segment.quantizer != getattr(manifest.quantizer, "id", None):
            raise CorruptIndex(f"segment {segment.id}: built from another IVF template")
    if manifest.segments and manifest.dim <= 0:
        raise CorruptIndex("manifest has segments but no dimension")
    return manifest


def read(store: ObjectStore, model_tag: str) -> tuple[Manifest, str | None]:
    """The current manifest and its ETag; an empty version-0 manifest and None if absent.

    Raises :class:`CorruptIndex` if the current manifest does not validate.
    """
    try:
        data, info = store.get_with_info(layout.manifest_key(model_tag))
    except ObjectNotFound:
        return Manifest(model_tag), None
    return parse(data, model_tag), info.etag


@dataclass(frozen=True)
class Newest(Generic[T]):
    """The newest manifest that validates, what was made of it, and what to publish after.

    ``etag`` is the ETag of ``MANIFEST.json`` as it is now (None if there is none), the
    one a writer must replace; ``refused`` says why the current object was not used
    (then ``manifest`` is an archived version); ``last_version`` is the highest version
    number published so far, which the next publication must exceed.
    """

    manifest: Manifest
    loaded: T
    etag: str | None
    last_version: int
    refused: CorruptIndex | None = None


def read_newest_valid(
    store: ObjectStore,
    model_tag: str,
    load: Callable[[Manifest], T],
    depth: int = RECOVERY_DEPTH,
) -> Newest[T]:
    """The newest manifest for which ``load`` succeeds: the current one, else one of the
    ``depth`` newest archived versions. ``load`` raises :class:`CorruptIndex` to refuse a
    version (a segment that fails its checksum, say). No manifest at all is an empty
    version 0 (numbered after any archived version). :class:`CorruptIndex` if nothing
    recent validates.
    """
    try:
        data, info = store.get_with_info(layout.manifest_key(model_tag))
    except ObjectNotFound:
        empty = Manifest(model_tag)
        archived = archived_versions(store, model_tag)  # a deleted manifest's history stays
        return Newest(empty, load(empty), None, archived[0] if archived else 0)
    try:
        current = parse(data, model_tag)
        return Newest(current, load(current), info.etag, current.version)
    except CorruptIndex as error:
        log.error("index %s: refusing the current manifest: %s", model_tag, error)
        refused = error
    versions = archived_versions(store, model_tag)
    for version in versions[:depth]:
        try:
            previous = read_version(store, model_tag, version)
            loaded = load(previous)
        except (CorruptIndex, ObjectNotFound) as error:
            log.error("index %s: archived v%d refused too: %s", model_tag, version, error)
            continue
        log.warning("index %s: falling back to archived v%d", model_tag, version)
        return Newest(previous, loaded, info.etag, versions[0], refused)
    raise CorruptIndex(
        f"index {model_tag}: the current manifest was refused ({refused}) and none of the "
        f"last {depth} archived versions validates"
    )


def publish(store: ObjectStore, manifest: Manifest, etag: str | None) -> str:
    """Replace the manifest read with ``etag`` (create it if ``etag`` is None).

    :class:`~pixsearch.storage.ConflictError` if someone else published first.
    Only the winner goes on to keep a copy under ``manifests/{version}``.
    """
    data = manifest.to_json()
    key = layout.manifest_key(manifest.model_tag)
    if etag is None:
        new_etag = store.put_if_absent(key, data, content_type="application/json")
    else:
        new_etag = store.replace_if_match(key, data, etag, content_type="application/json")
    copy_key = layout.manifest_version_key(manifest.model_tag, manifest.version)
    store.put(copy_key, data, content_type="application/json")
    return new_etag


def archived_versions(store: ObjectStore, model_tag: str) -> list[int]:
    """Versions kept under ``manifests/``, newest first."""
    prefix = layout.manifest_versions_prefix(model_tag)
    versions = []
    for info in store.list(prefix):
        stem = info.key.removeprefix(prefix).removesuffix(".json")
        if stem.isdigit():
            versions.append(int(stem))
    return sorted(versions, reverse=True)


def read_version(store: ObjectStore, model_tag: str, version: int) -> Manifest:
    return parse(store.get(layout.manifest_version_key(model_tag, version)), model_tag)


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
