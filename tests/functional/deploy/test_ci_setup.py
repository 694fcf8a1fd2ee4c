"""CI tells the truth: tests that need an installed tool run there, or CI fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.tools import missing_tool
from tests.functional.deploy.sources import ROOT

SCRIPT = ROOT / "scripts" / "install-system-deps.sh"


def test_a_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no sam"):
        missing_tool("no sam")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no sam; CI must run this test"):
        missing_tool("no sam")


def _run_setup(tmp_path: Path, chromium: str, ci: bool) -> tuple[subprocess.CompletedProcess, Path]:
    """The system-deps script where nothing can be installed (no apt-get on the PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("id", "touch"):
        target = bin_dir / name
        if not target.exists():
            target.symlink_to(shutil.which(name) or f"/usr/bin/{name}")
    stamp = tmp_path / ".system-deps-stamp"
    env = {"PATH": str(bin_dir), "PIXSEARCH_CHROMIUM": chromium, **({"CI": "true"} if ci else {})}
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT), str(stamp)], env=env, capture_output=True, text=True
    )
    return result, stamp


def test_no_stamp_when_the_browser_could_not_be_installed(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-chromium")
    result, stamp = _run_setup(tmp_path, missing, ci=False)
    assert result.returncode == 0 and "browser tests will be skipped" in result.stderr
    assert not stamp.exists()

    result, stamp = _run_setup(tmp_path, missing, ci=True)
    assert result.returncode == 1 and "CI must run the browser tests" in result.stderr
    assert not stamp.exists()


def test_stamp_once_the_browser_is_there(tmp_path: Path) -> None:
    result, stamp = _run_setup(tmp_path, sys.executable, ci=True)
    assert result.returncode == 0, result.stderr
    assert stamp.exists()


def test_ci_entry_point_runs_in_ci_mode() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert 'export CI="${CI:-true}"' in script
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
