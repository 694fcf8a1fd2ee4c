"""``pixsearch search``: the CLI through ``main``, against a real index on moto server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixsearch.cli import main
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.storage import ObjectStore
from tests.fixtures.model import StoredImage, store_images


@pytest.fixture
def indexed(tiny_model: ClipModel, store: ObjectStore, pipeline: Dispatcher) -> list[StoredImage]:
    images = store_images(store, 5)
    pipeline.drain()
    return images


def table_rows(output: str) -> list[list[str]]:
    lines = output.strip().splitlines()
    assert lines[1].split() == ["score", "key", "source_url"]
    return [line.split() for line in lines[2:]]


def test_text_search_prints_k_rows_best_first(
    indexed: list[StoredImage], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "a red car", "-k", "3"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 3
    scores = [float(row[0]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    sources = {image.key: image.source_url for image in indexed}
    assert all(sources[key] == url for _, key, url in rows)


def test_image_file_search_finds_that_image_first(
    indexed: list[StoredImage], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = tmp_path / "query.png"
    query.write_bytes(indexed[3].data)
    assert main(["search", "--image", str(query), "-k", "2"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[0][1] == indexed[3].key
    assert float(rows[0][0]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search"], "missing_query"),
        (["search", "a car", "--image", "x.png"], "cannot read"),
        (["search", "a car", "-k", "0"], "invalid_k"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    indexed: list[StoredImage],
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_filters_and_their_errors(
    indexed: list[StoredImage], capsys: pytest.CaptureFixture[str]
) -> None:
    wide = {image.key for image in indexed if image.size[0] >= 32}
    assert 0 < len(wide) < len(indexed)
    assert main(["search", "a red car", "-k", "5", "--min-width", "32", "--mode", "hybrid"]) == 0
    assert {row[1] for row in table_rows(capsys.readouterr().out)} == wide
    assert main(["search", "a red car", "--fetched-after", "last tuesday"]) == 2
    assert "invalid_filter" in capsys.readouterr().err
