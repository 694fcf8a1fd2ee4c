"""``pixsearch index rebuild`` against moto server."""

from __future__ import annotations

import pytest

from pixsearch.cli import main
from pixsearch.config import Settings
from pixsearch.index.manifest import read
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.engines import open_store
from tests.fixtures.model import unit_vectors, write_shard


def test_rebuild_command_indexes_every_shard(
    settings: Settings, store: ObjectStore, capsys: pytest.CaptureFixture[str]
):
    tag = settings.model_tag
    keys = [f"images/cd/{n:064x}.png" for n in range(5)]
    for key in keys:
        store.put(key, b"image")
    write_shard(store, tag, keys[:3], unit_vectors(3, 8, 0))
    write_shard(store, tag, keys[2:], unit_vectors(3, 8, 1))

    assert main(["index", "rebuild"]) == 0

    manifest, _ = read(store, tag)
    assert (manifest.version, manifest.vector_count, len(manifest.shards)) == (1, 5, 2)
    out = capsys.readouterr().out
    assert f"rebuilt index {tag} as version 1: 5 vectors from 2 shards" in out


def test_rebuild_into_lancedb_switches_engines_without_embedding_again(
    settings: Settings, store: ObjectStore, capsys: pytest.CaptureFixture[str]
):
    tag = settings.model_tag
    keys = [f"images/ce/{n:064x}.png" for n in range(6)]
    for key in keys:
        store.put(key, b"image")
    vectors = unit_vectors(6, 8, 2)
    write_shard(store, tag, keys[:4], vectors[:4])
    write_shard(store, tag, keys[3:], vectors[3:])
    store.delete(keys[0])

    assert main(["index", "rebuild", "--vector-store", "lancedb"]) == 0
    assert "5 vectors from 2 shards" in capsys.readouterr().out

    lance = open_store(settings.model_copy(update={"vector_store": "lancedb"}), store, tag)
    assert lance.count() == 5
    assert lance.search(vectors[4], 1).hits[0].key == keys[4]
    lance.add([write_shard(store, tag, keys[:1], vectors[:1])])  # a late shard of a gone image
    assert lance.count() == 5
    assert read(store, tag)[1] is None  # the FAISS index was not touched
