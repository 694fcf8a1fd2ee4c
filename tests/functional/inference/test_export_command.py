"""``pixsearch model export``: keeps an existing export, says why it cannot export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pixsearch.cli import main
from pixsearch.config import get_settings
from pixsearch.inference import TINY_MODEL


@pytest.fixture
def tiny_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PIXSEARCH_MODEL", TINY_MODEL)
    monkeypatch.setenv("PIXSEARCH_PRETRAINED", "")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_an_existing_export_is_kept(
    tiny_env: None, tiny_export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "export", "--to", str(tiny_export)]) == 0
    assert f"already exported at {tiny_export / 'pixsearch-tiny__none'}" in capsys.readouterr().out


def test_missing_weights_are_explained_and_nothing_is_written(
    tiny_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PIXSEARCH_PRETRAINED", str(tmp_path / "missing.pt"))
    get_settings.cache_clear()
    assert main(["model", "export", "--to", str(tmp_path / "models")]) == 1
    error = capsys.readouterr().err
    assert "cannot export" in error and "PIXSEARCH_PRETRAINED" in error
    assert "torch runtime runs the model" in error
    assert not (tmp_path / "models").exists()
