"""The ``ministack`` backend: MiniStack's S3 + SQS, objects on disk, state kept at shutdown.

MiniStack (``ministack`` on PyPI) reads its settings from the environment
(``ministack/app.py``, ``core/persistence.py``, ``services/s3.py``):
``GATEWAY_PORT`` / ``BIND_HOST`` where to listen; ``SERVICES`` which emulators
to load; ``S3_PERSIST=1`` + ``S3_DATA_DIR`` object bodies and metadata as files
(only metadata stays in memory); ``PERSIST_STATE=1`` + ``STATE_DIR`` queues,
messages and bucket configuration saved on SIGTERM and loaded at start. Its IoT
MQTT listener (port 8883) and SFTP server are turned off. It runs through
:mod:`pixsearch.runtime.ministack_fixes`, which journals every object and queue
change and saves every bucket change, so that a start, after a clean stop or a
crash, reads one metadata snapshot and the journals instead of every object's
sidecar, and a crash loses nothing acknowledged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, EmulatorProcess


def ministack_server(
    host: str, port: int, *, data_dir: Path | None = None, log_path: Path | None = None
) -> EmulatorProcess:
    """MiniStack on ``host:port``; with ``data_dir`` its data lives (and survives) there."""
    env = {
        **os.environ,
        **{k: os.environ.get(k, v) for k, v in LOCAL_CREDENTIALS.items()},
        "GATEWAY_PORT": str(port),
        "BIND_HOST": host,
        "SERVICES": "s3,sqs",
        "IOT_MTLS_ENABLED": "0",
        "SFTP_ENABLED": "0",
        "LOG_LEVEL": os.environ.get("PIXSEARCH_MINISTACK_LOG_LEVEL", "WARNING"),
        "S3_PERSIST": "0",
        "PERSIST_STATE": "0",
    }
    if data_dir is not None:
        env.update(
            S3_PERSIST="1",
            S3_DATA_DIR=str(data_dir / "s3"),
            PERSIST_STATE="1",
            STATE_DIR=str(data_dir / "state"),
        )
    return EmulatorProcess(
        backend="ministack",
        argv=[sys.executable, "-m", "pixsearch.runtime.ministack_fixes"],
        env=env,
        host=host,
        port=port,
        health_path="/_ministack/health",
        persists=data_dir is not None,
        log_path=log_path,
    )
