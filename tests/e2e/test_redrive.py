"""A record poisoned by a misconfiguration ends in the DLQ; once fixed, redrive brings it home."""

from __future__ import annotations

import pytest

from pixsearch import cli, dlq, topology
from pixsearch.config import get_settings
from pixsearch.index.reader import load_snapshot
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from tests.fixtures.model import store_images

pytestmark = pytest.mark.e2e


def test_redrive_brings_a_poisoned_then_fixed_record_back_through_the_pipeline(
    tiny_model: ClipModel,
    store: ObjectStore,
    queues: dict[str, topology.QueueUrls],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("PIXSEARCH_PRETRAINED", "/nowhere/weights.pt")
    get_settings.cache_clear()
    settings = get_settings()
    images = store_images(store, 3)
    Dispatcher(settings, queues).drain(timeout_s=120)

    letters = dlq.list_dead_letters(settings)
    assert sorted(key for letter in letters for key in letter.object_keys) == sorted(
        image.key for image in images
    )
    assert {letter.stage for letter in letters} == {"embed"}
    assert all("PIXSEARCH_PRETRAINED" in (letter.first_failure or "") for letter in letters)
    assert all(
        letter.receive_count == topology.stage("embed").max_receive_count for letter in letters
    )

    monkeypatch.setenv("PIXSEARCH_PRETRAINED", "")  # the fix: the weights the model really has
    get_settings.cache_clear()
    assert cli.main(["dlq", "redrive", "--stage", "embed"]) == 0
    # The images' events, and the bucket's s3:TestEvent that shared their failing batch.
    assert capsys.readouterr().out.strip() == f"embed: sent {len(letters)} message(s) back"
    Dispatcher(get_settings(), queues).drain(timeout_s=120)

    snapshot = load_snapshot(store, tiny_model.tag)
    assert snapshot.vector_count == 3
    assert dlq.list_dead_letters(get_settings()) == []
