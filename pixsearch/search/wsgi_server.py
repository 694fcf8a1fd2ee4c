"""The local search API's production WSGI server: waitress, threads from the settings.

Werkzeug's development server (one thread per connection, no backlog control) is
for debugging; waitress is a pure-Python production server with a fixed pool of
``PIXSEARCH_API_THREADS`` worker threads and its own connection limit, so load
beyond what the threads can take queues instead of piling up threads.

A process serving the API caps glibc's malloc arenas (``PIXSEARCH_API_MALLOC_ARENAS``,
2). By default glibc gives each of up to 8 threads per core an arena of its own,
and each arena keeps the free space its thread's peaks left behind; with 16 busy
workers, freed memory kept in their arenas grew the process under load
(bench/load.py measured it). The workers spend most of their time holding the GIL
(or in onnxruntime and FAISS, which allocate little per call), so two arenas cost
no measurable throughput.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass
from typing import Any

from waitress.server import create_server

from pixsearch.config import Settings

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter, glibc's malloc.h


@dataclass
class ApiServer:
    server: Any
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.effective_host, self.server.effective_port
        return f"http://{host}:{port}"

    def start(self) -> ApiServer:
        """Serve in a daemon thread."""
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """End the serving loop from inside it (closing its sockets from another thread
        would pull them out from under its ``select``), then close the sockets."""
        if self.thread is not None and self.thread.is_alive():
            self.server.trigger.pull_trigger(_exit_loop)
            self.thread.join(timeout=10)
        self.server.close()


def _exit_loop() -> None:
    raise SystemExit  # waitress's run() takes this as the signal to stop its workers


def limit_malloc_arenas(count: int) -> bool:
    """Cap this process's glibc malloc arenas at ``count`` (0 leaves glibc's default).

    It holds for arenas made from now on, so it is set before the server's threads
    start; True where it took effect (glibc), False elsewhere (musl, macOS)."""
    if count <= 0:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None or not mallopt(M_ARENA_MAX, count):
        log.info("malloc arenas not capped (no glibc mallopt here)")
        return False
    return True


def api_server(app: Any, settings: Settings, port: int | None = None) -> ApiServer:
    """``app`` served on ``PIXSEARCH_API_HOST``:``PIXSEARCH_API_PORT`` (or ``port``), not
    yet started; the process's malloc arenas capped first (``PIXSEARCH_API_MALLOC_ARENAS``)."""
    limit_malloc_arenas(settings.api_malloc_arenas)
    server = create_server(
        app,
        host=settings.api_host,
        port=settings.api_port if port is None else port,
        threads=settings.api_threads,
        connection_limit=settings.api_connection_limit,
        channel_timeout=60,
        ident="pixsearch",
        clear_untrusted_proxy_headers=True,
    )
    return ApiServer(server)
