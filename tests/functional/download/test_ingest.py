"""``pixsearch ingest`` against moto server with the pipeline running in the background."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pixsearch import layout, topology
from pixsearch.cli import main
from pixsearch.config import Settings
from pixsearch.download.urlmap import read_maps, read_summary
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from tests.fixtures.images import ImageServer


@pytest.fixture
def pipeline_running(
    tiny_model: ClipModel, settings: Settings, queues: dict[str, topology.QueueUrls]
) -> Iterator[Dispatcher]:
    runtime = Dispatcher(settings, queues)
    runtime.start()
    yield runtime
    runtime.stop()


def test_ingest_then_retry_only_the_failed_rows(
    image_server: ImageServer,
    store: ObjectStore,
    pipeline_running: Dispatcher,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = image_server.add_images(2)
    late = image_server.url("late.png")
    path = tmp_path / "pets.txt"
    path.write_text("\n".join([*good, late, "mailto:x@example.com"]) + "\n")

    assert main(["ingest", str(path), "--timeout", "120"]) == 0
    out, err = capsys.readouterr()
    assert "2 images searchable" in err and "after upload" in err
    assert "embedded: 100%" in err and "searchable: 100%" in err
    assert "pets.txt: 4 URLs in 1 part(s)" in out
    assert "fetched     2" in out and "http_404" in out and "bad_url" in out
    assert "pixsearch ingest --retry-failed pets.txt" in out

    image_server.add_image("late.png", color=(9, 200, 9), fmt="PNG")
    assert main(["ingest", "--retry-failed", "pets.txt", "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "fetched     3" in out and "http_404" not in out and "bad_url" in out
    assert [image_server.hits[f"/img/{i}.jpeg"] for i in range(2)] == [1, 1]
    assert image_server.hits["/late.png"] == 2
    assert store.count(layout.IMAGES) == 3
    assert store.count(layout.PROGRESS) == 0  # counters go once the maps are written

    # The same content again is a new run: ingest waits for its new map.
    before = read_maps(store, "pets.txt")[0].etag
    assert main(["ingest", str(path), "--timeout", "60"]) == 0
    summary = read_summary(store, "pets.txt")
    assert summary is not None and summary["part_maps"]["00000"] != before
    assert summary["counts"] == {"ok": 3, "duplicate": 0, "failed": 1}


def test_ingest_refuses_an_unreadable_list_before_uploading(
    store: ObjectStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "list.csv"
    path.write_text("name\nx\n")
    assert main(["ingest", str(path)]) == 1
    assert "no 'url' column" in capsys.readouterr().err
    assert store.count(layout.URLS) == 0


def test_retry_of_an_unknown_list_is_a_clear_error(
    store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "--retry-failed", "nothing"]) == 1
    assert "has no summary yet" in capsys.readouterr().err


def test_no_wait_uploads_and_returns(
    store: ObjectStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "later.txt"
    path.write_text("http://127.0.0.1:9/a.jpg\n")
    assert main(["ingest", str(path), "--no-wait"]) == 0
    assert "uploaded 1 URLs" in capsys.readouterr().err
    assert store.head("urls/later.txt") is not None
