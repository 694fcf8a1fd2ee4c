"""The embedded object store + queues of the local stack: one launcher, several backends.

A backend is a child process serving S3 + SQS (with S3 -> SQS notifications) on
``host:port``. :func:`launch` picks one by name (``PIXSEARCH_LOCAL_BACKEND``);
each backend module only says how to start its server and whether it keeps
its data on disk by itself:

- ``ministack`` (:mod:`pixsearch.runtime.ministack_server`, the default):
  objects on disk, every queued message journaled as it changes (a crash
  loses none), queues and bucket configuration saved at shutdown; a restart
  is ready in about a second with everything in place.
- ``moto`` (:mod:`pixsearch.runtime.moto_server`): moto server with the fixes of
  :mod:`pixsearch.runtime.moto_fixes`; everything in memory, gone at stop.
  The reference test fixture.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Backend = Literal["ministack", "moto"]
BACKENDS: tuple[Backend, ...] = ("ministack", "moto")

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class EmulatorProcess:
    """An emulator child process; ``start()`` returns once ``health_path`` answers HTTP."""

    backend: Backend
    argv: Sequence[str]
    env: Mapping[str, str]
    host: str
    port: int
    health_path: str
    persists: bool
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmulatorProcess:
        if _answers(f"{self.endpoint_url}/"):
            raise RuntimeError(
                f"something already listens on {self.endpoint_url}; stop it or choose another "
                "port with PIXSEARCH_MOTO_PORT"
            )
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            list(self.argv), stdout=out, stderr=subprocess.STDOUT, env=dict(self.env)
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.backend} exited with code {self.process.returncode} while starting"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            if _answers(self.endpoint_url + self.health_path):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.backend} did not answer on {self.endpoint_url} in {timeout_s}s")

    def stop(self) -> None:
        """SIGTERM (a persisting backend saves its state then), SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(
    backend: str,
    *,
    host: str = "127.0.0.1",
    port: int,
    data_dir: Path | None = None,
    log_path: Path | None = None,
) -> EmulatorProcess:
    """The (not yet started) emulator ``backend``; ``data_dir`` set means keep data there."""
    if backend == "ministack":
        from pixsearch.runtime.ministack_server import ministack_server

        return ministack_server(host, port, data_dir=data_dir, log_path=log_path)
    if backend == "moto":
        from pixsearch.runtime.moto_server import moto_server

        return moto_server(host, port, log_path=log_path)
    raise ValueError(
        f"unknown local backend {backend!r} (PIXSEARCH_LOCAL_BACKEND); "
        f"choose one of {', '.join(BACKENDS)}"
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it speaks HTTP, whatever it thinks of the path
    except OSError:
        return False
