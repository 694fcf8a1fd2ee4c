"""``pixsearch index rebuild`` against moto server."""

from __future__ import annotations

import pytest

from pixsearch.cli import main
from pixsearch.config import Settings
from pixsearch.index.manifest import read
from pixsearch.storage import ObjectStore
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
