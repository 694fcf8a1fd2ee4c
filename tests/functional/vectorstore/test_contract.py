"""One contract for both vector store engines, on moto server: every test runs on each.

Search, metadata, filters that still return k hits, hybrid caption search,
deletes that survive late events, concurrent writers, and damaged data.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from pixsearch import layout, shards
from pixsearch.config import Settings
from pixsearch.runtime.emulator import LOCAL_CREDENTIALS
from pixsearch.shards import Shard, ShardRow
from pixsearch.storage import ObjectStore, client
from pixsearch.vectorstore.engines import ENGINES, open_store
from pixsearch.vectorstore.filters import parse_filter
from pixsearch.vectorstore.port import StoreUnavailable, VectorStore
from tests.fixtures.aws import Emulators
from tests.fixtures.model import unit_vectors
from tests.fixtures.vectors import DIM, TAG, engine_settings, image_key, make_shard


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def vectors(settings: Settings, store: ObjectStore, engine: str) -> VectorStore:
    """An empty store of this test's own."""
    return open_store(engine_settings(settings, engine), store, TAG)


@pytest.fixture(scope="module", params=ENGINES)
def loaded(
    emulators: Emulators, request: pytest.FixtureRequest
) -> Iterator[tuple[VectorStore, list[Shard]]]:
    """600 rows in three adds, past both engines' ANN thresholds; shared by read-only tests."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in LOCAL_CREDENTIALS.items():
            patch.setenv(name, value)
        patch.setenv("AWS_ENDPOINT_URL", emulators.get("moto").endpoint_url)
        client.cache_clear()
        bucket = f"contract-{request.param}-{uuid.uuid4().hex[:8]}"
        client("s3").create_bucket(Bucket=bucket)
        store = ObjectStore(bucket)
        vectors = open_store(engine_settings(Settings(bucket=bucket), request.param), store, TAG)
        added = [make_shard(store, first, 200) for first in (0, 200, 400)]
        for shard in added:
            vectors.add([shard])
        yield vectors, added
    client.cache_clear()


def test_nearest_row_first_with_all_its_metadata(loaded: tuple[VectorStore, list[Shard]]):
    vectors, filled = loaded
    query = filled[1].vectors[7]
    found = vectors.search(query, 10)
    assert len(found.hits) == 10
    best = found.hits[0]
    assert best.key == filled[1].rows[7].key and best.score == pytest.approx(1.0, abs=0.02)
    scores = [hit.score for hit in found.hits]
    assert scores == sorted(scores, reverse=True)
    row = filled[1].rows[7]
    meta = best.meta
    assert (meta.source_url, meta.width, meta.height, meta.bytes) == (
        row.source_url,
        row.width,
        row.height,
        row.bytes,
    )
    assert (meta.list_name, meta.source_domain, meta.fetched_at) == (
        row.list_name,
        "site3.example",
        row.fetched_at.replace("Z", ".000Z"),
    )
    assert vectors.count() == 600


def test_recall_at_10_against_an_exact_scan(loaded: tuple[VectorStore, list[Shard]]):
    vectors, filled = loaded
    data = np.concatenate([shard.vectors for shard in filled])
    keys = [row.key for shard in filled for row in shard.rows]
    rng = np.random.default_rng(5)
    queries = data[rng.choice(len(data), 30, replace=False)] + rng.normal(0, 0.05, (30, DIM))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    found = 0
    for query in queries:
        exact = {keys[i] for i in np.argsort(-(data @ query))[:10]}
        found += len(exact & {hit.key for hit in vectors.search(query, 10).hits})
    assert found / (10 * len(queries)) >= 0.95


FILTERS: list[tuple[dict[str, Any], Callable[[ShardRow], bool]]] = [
    ({"list": "fish"}, lambda row: row.list_name == "fish"),
    ({"source_domain": "SITE2.example"}, lambda row: "site2." in row.source_url),
    ({"min_width": 900}, lambda row: row.width >= 900),
    ({"min_height": 400, "min_width": 500}, lambda row: row.height >= 400 and row.width >= 500),
    (
        {"fetched_after": "2026-01-20T00:00:00Z", "fetched_before": "2026-01-25T00:00:00Z"},
        lambda row: "2026-01-20" <= row.fetched_at < "2026-01-25",
    ),
    (
        {"list": "cars", "min_width": 1000},
        lambda row: row.list_name == "cars" and row.width >= 1000,
    ),
]


@pytest.mark.parametrize(("raw", "expected"), FILTERS, ids=[str(f[0]) for f in FILTERS])
def test_filters_return_k_matching_rows_whenever_k_exist(
    loaded: tuple[VectorStore, list[Shard]], raw: dict[str, Any], expected: Callable
):
    vectors, filled = loaded
    matching = {row.key for shard in filled for row in shard.rows if expected(row)}
    assert 10 <= len(matching) < 300  # selective: most of the nearest rows do not match
    query = filled[0].vectors[0]
    hits = vectors.search(query, 10, parse_filter(raw)).hits
    assert len(hits) == 10
    assert {hit.key for hit in hits} <= matching
    few = vectors.search(query, 100, parse_filter(raw)).hits
    assert len(few) == min(100, len(matching))


def test_a_filter_nothing_matches_finds_nothing(loaded: tuple[VectorStore, list[Shard]]):
    vectors, filled = loaded
    assert vectors.search(filled[0].vectors[0], 5, parse_filter({"list": "none"})).hits == []


def test_hybrid_lifts_caption_matches_and_keeps_clip_scores(
    loaded: tuple[VectorStore, list[Shard]],
):
    vectors, filled = loaded
    query = filled[0].vectors[0]
    clip = vectors.search(query, 10).hits
    hybrid = vectors.search(query, 10, text="zebra").hits
    assert len(hybrid) == 10
    captioned = [hit for hit in hybrid if hit.meta.caption and "zebra" in hit.meta.caption]
    assert len(captioned) > sum(1 for hit in clip if hit.meta.caption)
    data = {
        row.key: vector
        for shard in filled
        for row, vector in zip(shard.rows, shard.vectors, strict=True)
    }
    for hit in hybrid:
        assert hit.score == pytest.approx(float(data[hit.key] @ query), abs=0.02)
    filtered = vectors.search(query, 5, parse_filter({"list": "fish"}), text="zebra").hits
    assert filtered and all(hit.meta.list_name == "fish" for hit in filtered)


def test_hybrid_is_clip_when_no_list_had_captions(store: ObjectStore, vectors: VectorStore):
    vectors.add([make_shard(store, 0, 120, captions=False)])
    query = unit_vectors(1, DIM, seed=99)[0]
    clip = vectors.search(query, 8).hits
    assert [hit.key for hit in vectors.search(query, 8, text="zebra").hits] == [
        hit.key for hit in clip
    ]


def test_removed_images_leave_and_late_shards_do_not_bring_them_back(
    store: ObjectStore, vectors: VectorStore
):
    filled = [make_shard(store, 0, 60)]
    vectors.add(filled)
    vectors.add(filled)  # a replayed shard adds nothing
    assert vectors.count() == 60
    gone = [row.key for row in filled[0].rows[:5]]
    kept = filled[0].rows[5].key
    for key in gone:
        store.delete(key)
    vectors.remove([*gone, kept])  # an image still in the bucket is not removed
    vectors.refresh()
    assert vectors.count() == 55
    query = filled[0].vectors[0]
    assert gone[0] not in {hit.key for hit in vectors.search(query, 20).hits}
    vectors.add([filled[0]])  # a redelivered shard arrives after the removal
    vectors.refresh()
    assert vectors.count() == 55
    store.put(gone[0], b"jpeg again")  # re-uploaded: its next shard makes it live again
    vectors.add([make_shard_rows(store, filled[0], [0])])
    vectors.refresh()
    assert vectors.search(query, 1).hits[0].key == gone[0]


def make_shard_rows(store: ObjectStore, shard: Shard, positions: list[int]) -> Shard:
    """A new shard holding some rows of ``shard`` again (a later embed of the same images)."""
    rows = [shard.rows[i] for i in positions]
    rows = [ShardRow(**{**vars(row), "etag": row.etag + "-again"}) for row in rows]
    return shards.read(store, TAG, shards.write(store, TAG, rows, shard.vectors[positions]))


def _write_rows(engine: str, settings_json: str, first: int, barrier: Any) -> None:
    """One index run in its own process: wait for the other, then add three shards."""
    settings = Settings.model_validate_json(settings_json)
    store = ObjectStore(settings.bucket)
    batch = [make_shard(store, first + n * 40, 40) for n in range(3)]
    target = open_store(settings, store, TAG)
    barrier.wait(timeout=120)
    for shard in batch:
        target.add([shard])


def test_two_index_runs_committing_at_once_lose_nothing(
    settings: Settings, store: ObjectStore, engine: str
):
    context = multiprocessing.get_context("spawn")  # LanceDB's runtime does not survive fork
    barrier = context.Barrier(2)
    configured = engine_settings(settings, engine).model_dump_json()
    runs = [
        context.Process(target=_write_rows, args=(engine, configured, first, barrier))
        for first in (0, 1000)
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=300)
    assert [run.exitcode for run in runs] == [0, 0]
    vectors = open_store(engine_settings(settings, engine), store, TAG)
    assert vectors.count() == 240
    probe = make_shard(store, 1000 + 80, 40)
    assert vectors.search(probe.vectors[39], 1).hits[0].key == image_key(1119)


def test_damaged_newest_version_keeps_the_last_good_one_serving(
    settings: Settings, store: ObjectStore, engine: str, vectors: VectorStore
):
    first = make_shard(store, 0, 50)
    vectors.add([first])
    query = first.vectors[3]
    vectors.search(query, 3)
    vectors.add([make_shard(store, 50, 50)])
    damage_newest_version(store, engine)
    vectors.refresh()
    assert vectors.search(query, 3).hits[0].key == first.rows[3].key
    described = vectors.describe()
    assert described.problem and described.version is not None
    fresh = open_store(engine_settings(settings, engine), store, TAG)
    later = make_shard(store, 100, 10)
    if engine == "faiss":  # readers fall back to the newest archived manifest that validates
        assert fresh.search(query, 3).hits[0].key == first.rows[3].key
        vectors.add([later])  # and the next update heals the index
        fresh.refresh()
        assert fresh.count() == 110
    else:  # a new reader or writer cannot open the table: a clear error, not a wrong answer
        with pytest.raises(StoreUnavailable, match="cannot open LanceDB table"):
            fresh.search(query, 3)
        with pytest.raises(StoreUnavailable, match="rebuild"):
            vectors.add([later])


def damage_newest_version(store: ObjectStore, engine: str) -> None:
    if engine == "faiss":
        store.put(layout.manifest_key(TAG), b'{"format": 1, "trunc')
        return
    prefix = f"{layout.lance_prefix(TAG)}/rows.lance/_versions/"
    # LanceDB names versions counting down from 2**64 - 1: the newest sorts first.
    newest = min(info.key for info in store.list(prefix))
    store.put(newest, b"not a lance manifest " + uuid.uuid4().bytes)
