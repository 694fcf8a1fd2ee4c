"""Which shards an index has folded in: recent ids inline in the manifest, older ones in
one immutable, content-addressed object (a sorted array of 16-byte ids).

The manifest stays small however many shards the index has seen; when the inline list
passes :data:`INLINE_MAX`, it is merged with the current set into a new set object.
"""

from __future__ import annotations

import hashlib
import io
import threading

import numpy as np

from pixsearch import layout
from pixsearch.index.manifest import CorruptIndex, Manifest, ShardSetEntry
from pixsearch.index.segment import get_checked, put_immutable
from pixsearch.storage import ObjectStore

INLINE_MAX = 256

_loaded: dict[tuple[str, str, str], frozenset[str]] = {}
_lock = threading.Lock()


def folded_ids(store: ObjectStore, manifest: Manifest) -> frozenset[str]:
    """Every shard id ``manifest`` counts as folded in."""
    if manifest.shard_set is None:
        return manifest.shards
    return manifest.shards | _read(store, manifest.model_tag, manifest.shard_set)


def with_shards(
    store: ObjectStore, manifest: Manifest, added: set[str]
) -> tuple[frozenset[str], ShardSetEntry | None]:
    """The inline ids and set object after folding ``added`` in (writing a new set object
    when the inline ids grow past :data:`INLINE_MAX`)."""
    inline = manifest.shards | added
    if len(inline) <= INLINE_MAX:
        return inline, manifest.shard_set
    every = sorted(folded_ids(store, manifest) | added)
    array = np.frombuffer(b"".join(bytes.fromhex(i) for i in every), dtype=np.uint8)
    buffer = io.BytesIO()
    np.save(buffer, array.reshape(len(every), 16), allow_pickle=False)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    entry = ShardSetEntry(id=digest[:32], sha256=digest, count=len(every))
    put_immutable(store, layout.shard_set_key(manifest.model_tag, entry.id), data)
    with _lock:
        _loaded[(store.bucket, manifest.model_tag, entry.id)] = frozenset(every)
    return frozenset(), entry


def _read(store: ObjectStore, model_tag: str, entry: ShardSetEntry) -> frozenset[str]:
    cache_key = (store.bucket, model_tag, entry.id)
    with _lock:
        found = _loaded.get(cache_key)
    if found is not None:
        return found
    data = get_checked(store, layout.shard_set_key(model_tag, entry.id), entry.sha256)
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.dtype != np.uint8 or array.shape != (entry.count, 16):
        raise CorruptIndex(f"shard set {entry.id}: {array.shape} ids, {entry.count} expected")
    found = frozenset(row.tobytes().hex() for row in array)
    with _lock:
        _loaded[cache_key] = found
    return found
