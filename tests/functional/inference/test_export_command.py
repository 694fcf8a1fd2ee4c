"""``pixsearch model export``: keeps an existing export, says why it cannot export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixsearch.cli import main
from pixsearch.config import get_settings
from pixsearch.inference import TINY_MODEL
from pixsearch.inference.exported import MANIFEST


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


def test_without_int8_graphs_the_export_runs_fp32_and_says_so(
    tiny_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "export", "--to", str(tmp_path), "--quantize", "none"]) == 0
    out = capsys.readouterr().out
    assert "runs by default (PIXSEARCH_ONNX_PRECISION=auto): fp32" in out
    assert "no int8 graphs" in out and "int8.onnx" not in out
    manifest = json.loads((tmp_path / "pixsearch-tiny__none" / MANIFEST).read_text())
    assert set(manifest["graphs"]) == {"fp32"}
