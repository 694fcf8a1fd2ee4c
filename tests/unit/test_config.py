"""Settings come from PIXSEARCH_* variables, typed and validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pixsearch.config import Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings()
    assert (settings.model, settings.pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    assert settings.model_tag == "ViT-B-32__laion2b_s34b_b79k"
    assert settings.data_dir == tmp_path / "pixsearch"
    assert settings.download_allow == ""  # nothing non-public is fetched unless asked


def test_environment_overrides_with_types(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PIXSEARCH_BUCKET", "photos")
    monkeypatch.setenv("PIXSEARCH_EMBED_BATCH_SIZE", "8")
    monkeypatch.setenv("PIXSEARCH_DOWNLOAD_RESPECT_ROBOTS", "false")
    settings = Settings()
    assert (settings.bucket, settings.embed_batch_size) == ("photos", 8)
    assert settings.download_respect_robots is False


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PIXSEARCH_EMBED_BATCH_SIZE", "zero")
    with pytest.raises(ValidationError, match="embed_batch_size"):
        Settings()
