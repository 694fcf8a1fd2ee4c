"""The ``moto`` backend: moto server with pixsearch's SQS fixes, everything in memory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, EmulatorProcess


def moto_server(host: str, port: int, *, log_path: Path | None = None) -> EmulatorProcess:
    """moto server through :mod:`pixsearch.runtime.moto_fixes`; keeps nothing across stops."""
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in LOCAL_CREDENTIALS.items()}}
    return EmulatorProcess(
        backend="moto",
        argv=[sys.executable, "-m", "pixsearch.runtime.moto_fixes", "-H", host, "-p", str(port)],
        env=env,
        host=host,
        port=port,
        health_path="/moto-api/data.json",
        persists=False,
        log_path=log_path,
    )
