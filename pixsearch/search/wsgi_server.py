"""The local search API's production WSGI server: waitress, threads from the settings.

Werkzeug's development server (one thread per connection, no backlog control) is
for debugging; waitress is a pure-Python production server with a fixed pool of
``PIXSEARCH_API_THREADS`` worker threads and its own connection limit, so load
beyond what the threads can take queues instead of piling up threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from waitress.server import create_server

from pixsearch.config import Settings
from pixsearch.search.arenas import limit_malloc_arenas


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
