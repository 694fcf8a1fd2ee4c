"""The local API's WSGI server: waitress with the settings' thread pool, as `pixsearch up`,
docker-compose and the search container run it (``functions/search/local.py``)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from flask import Flask

from pixsearch.config import Settings
from pixsearch.runtime.emulator import free_port
from pixsearch.search.wsgi_server import api_server
from tests.fixtures.tools import missing_tool
from tests.functional.deploy.sources import ROOT


def test_requests_run_on_exactly_the_configured_threads() -> None:
    """Two threads: two requests meet at a barrier inside the app, the rest queue."""
    app = Flask("probe")
    lock, running, peak = threading.Lock(), [0], [0]
    meeting = threading.Barrier(2, timeout=30)

    @app.get("/work")
    def work() -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            meeting.wait()
        finally:
            with lock:
                running[0] -= 1
        return "done"

    server = api_server(app, Settings(api_threads=2), port=free_port()).start()
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(lambda _: requests.get(f"{server.url}/work", timeout=60), range(8))
            )
    finally:
        server.stop()
    assert [reply.text for reply in replies] == ["done"] * 8
    assert replies[0].headers["Server"] == "pixsearch"
    assert peak[0] == 2


def test_the_container_entry_point_serves_the_api_under_waitress(settings: Settings) -> None:
    port = free_port()
    env = {**os.environ, "PIXSEARCH_API_PORT": str(port), "PIXSEARCH_API_THREADS": "4"}
    process = subprocess.Popen(
        [sys.executable, "local.py"],
        cwd=ROOT / "functions" / "search",
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                reply = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the API never answered"
                time.sleep(0.2)
        assert reply.status_code in (200, 503) and reply.json()["model"] == settings.model_tag
        assert reply.headers["Server"] == "pixsearch"
    finally:
        process.terminate()
        process.wait(timeout=30)


ARENA_PROBE = """
import ctypes, sys, threading
from pixsearch.search.arenas import limit_malloc_arenas

print(limit_malloc_arenas(int(sys.argv[1])), flush=True)
meeting = threading.Barrier(16, timeout=30)

def work():
    buffers = [bytearray(4096) for _ in range(64)]  # malloc, each thread at once
    meeting.wait()

threads = [threading.Thread(target=work) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" paragraph per arena, on stderr
"""


def malloc_arenas_of_16_busy_threads(cap: int) -> tuple[bool, int]:
    probe = subprocess.run(
        [sys.executable, "-c", ARENA_PROBE, str(cap)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    arenas = sum(line.startswith("Arena ") for line in probe.stderr.splitlines())
    return probe.stdout.strip() == "True", arenas


def test_the_api_process_caps_malloc_arenas_for_its_threads() -> None:
    if platform.libc_ver()[0] != "glibc":
        missing_tool("malloc arenas are glibc's, and this C library is not glibc")
    capped, arenas = malloc_arenas_of_16_busy_threads(0)  # glibc's default: up to 8 per core
    assert not capped
    assert arenas > 2
    capped, arenas = malloc_arenas_of_16_busy_threads(Settings().api_malloc_arenas)
    assert capped
    assert arenas == 2
