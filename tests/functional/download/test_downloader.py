"""The downloader against a real HTTP server: every route ends as the expected map row."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time

import pytest
from aiohttp import web

from pixsearch.config import Settings
from pixsearch.download.downloader import Downloader
from pixsearch.download.outcome import MapRow, Status
from pixsearch.download.urllist import UrlEntry
from pixsearch.images import ValidImage
from pixsearch.origin import ImageOrigin
from pixsearch.runtime.emulator import free_port
from tests.fixtures.images import ImageServer, make_image, make_png_bomb

CAP = 256 * 1024


class MemorySink:
    """An in-memory content-addressed store with the bucket's first-writer-wins rule."""

    def __init__(self) -> None:
        self.images: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def store(self, image: ValidImage, origin: ImageOrigin) -> tuple[str, Status]:
        key = f"images/{image.sha256[:2]}/{image.sha256}.{image.ext}"
        with self._lock:
            if key in self.images:
                return key, "duplicate"
            self.images[key] = (image.data, origin.source_url or "")
        return key, "ok"


def _settings(server: ImageServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "download_allow": server.allow_entry,
        "download_total_timeout_s": 2.0,
        "download_read_timeout_s": 1.0,
        "download_connect_timeout_s": 1.0,
        "download_max_bytes": CAP,
        "download_backoff_s": 0.05,
        "download_retry_after_cap_s": 0.5,
        "download_retries": 2,
        "download_max_redirects": 3,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _run(
    server: ImageServer, urls: list[str], **overrides: object
) -> tuple[list[MapRow], MemorySink]:
    sink = MemorySink()
    entries = [UrlEntry(line, url) for line, url in enumerate(urls, start=1)]
    rows = Downloader(_settings(server, **overrides), sink).run(entries)
    assert [(row.line, row.url) for row in rows] == [(e.line, e.url) for e in entries]
    return rows, sink


def _flaky(status: int, failures: int, body: bytes, headers: dict[str, str] | None = None):
    calls = {"n": 0}

    async def handler(_: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] <= failures:
            return web.Response(status=status, headers=headers or {})
        return web.Response(body=body, content_type="image/jpeg")

    return handler


async def _drip(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    await response.prepare(request)
    for _ in range(1000):
        await response.write(b"\xff")
        await asyncio.sleep(0.2)
    return response


def _endless(sent: list[int]):
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        chunk = b"\x00" * 65536
        try:
            for _ in range(10_000):
                await response.write(chunk)
                sent[0] += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    return handler


def test_every_route_ends_as_the_expected_row(image_server: ImageServer) -> None:
    s = image_server
    truncated = make_image(size=(200, 200), shape="stripes")
    sent = [0]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'
    blocked_port = free_port()

    async def loop_redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def to_metadata(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def to_other_port(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{blocked_port}/x.jpg")

    async def hop(_: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/good.png")

    async def robots(_: web.Request) -> web.Response:
        body = make_image((5, 5, 5))
        return web.Response(body=body, content_type="image/jpeg", headers={"X-Robots-Tag": "noai"})

    expected = {
        s.add_image("good.jpg", (250, 0, 0)): ("stored", None),
        s.add_image("good.png", (0, 250, 0), fmt="PNG"): ("stored", None),
        s.add_image("good.webp", (0, 0, 250), fmt="WEBP"): ("stored", None),
        s.add_route("moved", hop): ("stored", None),
        s.url("missing.jpg"): ("failed", "http_404"),
        s.add_route("flaky", _flaky(500, 1, make_image((1, 99, 1)))): ("stored", None),
        s.add_route("busy", _flaky(503, 99, b"")): ("failed", "http_503"),
        s.add_route("drip", _drip): ("failed", "timeout"),
        s.add_route("loop", loop_redirect): ("failed", "too_many_redirects"),
        s.add_route("meta", to_metadata): ("failed", "blocked_address"),
        s.add_route("other-port", to_other_port): ("failed", "blocked_address"),
        s.add_route("endless", _endless(sent)): ("failed", "too_large"),
        s.add_bytes("big.jpg", b"\xff" * (CAP + 1), "image/jpeg"): ("failed", "too_large"),
        s.add_bytes("page.html", b"<html></html>", "text/html"): ("failed", "not_image"),
        s.add_bytes("blob", b"plain bytes, no image", "application/octet-stream"): (
            "failed",
            "not_image",
        ),
        s.add_bytes("cut.jpg", truncated[: len(truncated) // 2], "image/jpeg"): (
            "failed",
            "corrupt",
        ),
        s.add_bytes("bomb.png", make_png_bomb(), "image/png"): ("failed", "bomb"),
        s.add_bytes("logo.svg", svg, "image/svg+xml"): ("failed", "unsupported_format"),
        s.add_route("robots.jpg", robots): ("failed", "robots_disallowed"),
        f"http://127.0.0.1:{blocked_port}/a.jpg": ("failed", "blocked_address"),
        f"http://localhost:{blocked_port}/a.jpg": ("failed", "blocked_address"),
        f"http://localhost:{s.port}/good.jpg": ("stored", None),
        "http://169.254.169.254/latest/meta-data/": ("failed", "blocked_address"),
        "http://0x7f000001/a.jpg": ("failed", "blocked_address"),
        "ftp://example.com/a.jpg": ("failed", "bad_url"),
    }
    rows, sink = _run(s, list(expected))
    stored = ("ok", "duplicate")
    got = {row.url: ("stored" if row.status in stored else row.status, row.error) for row in rows}
    assert got == expected
    # The same bytes from several URLs are stored once: one "ok", the rest "duplicate".
    by_key: dict[str, list[str]] = {}
    for row in rows:
        if row.key:
            by_key.setdefault(row.key, []).append(row.status)
    assert sorted(len(statuses) for statuses in by_key.values()) == [1, 1, 2, 2]
    for statuses in by_key.values():
        assert sorted(statuses) == ["duplicate"] * (len(statuses) - 1) + ["ok"]
    assert s.hits["/flaky"] == 2
    assert s.hits["/busy"] == 3
    # The server would send 640 MB; what it managed is the cap plus socket buffers.
    assert sent[0] < 32 * 1024 * 1024, "the body cap must stop the transfer, not read it all"
    for row in rows:
        if row.status == "failed":
            assert row.message and row.key is None
        else:
            assert row.key in sink.images and row.width and row.height and row.sha256
    assert len(sink.images) == 4
    assert s.hits["/good.jpg"] == 2


def test_retry_after_is_honoured(image_server: ImageServer) -> None:
    url = image_server.add_route(
        "limited", _flaky(429, 1, make_image((9, 9, 9)), {"Retry-After": "1"})
    )
    started = time.monotonic()
    rows, _ = _run(image_server, [url], download_retry_after_cap_s=0.4, download_backoff_s=0)
    assert rows[0].status == "ok"
    assert time.monotonic() - started >= 0.4
    assert image_server.hits["/limited"] == 2


def test_4xx_is_not_retried_and_robots_can_be_ignored(image_server: ImageServer) -> None:
    gone = image_server.add_route("gone", _flaky(410, 99, b""))

    async def robots(_: web.Request) -> web.Response:
        return web.Response(
            body=make_image((7, 7, 7)),
            content_type="image/jpeg",
            headers={"X-Robots-Tag": "noimageai"},
        )

    tagged = image_server.add_route("tagged", robots)
    rows, _ = _run(image_server, [gone, tagged], download_respect_robots=False)
    assert [(r.status, r.error) for r in rows] == [("failed", "http_410"), ("ok", None)]
    assert image_server.hits["/gone"] == 1


def test_compressed_body_is_capped_by_its_decompressed_size(image_server: ImageServer) -> None:
    bomb = gzip.compress(b"\x00" * (CAP * 8))

    async def gzipped(_: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Type": "image/jpeg", "Content-Encoding": "gzip"}
        )

    url = image_server.add_route("gzip-bomb", gzipped)
    rows, _ = _run(image_server, [url])
    assert len(bomb) < CAP
    assert (rows[0].status, rows[0].error) == ("failed", "too_large")


def test_connection_refused_is_retried_then_reported(image_server: ImageServer) -> None:
    port = free_port()
    rows, _ = _run(
        image_server, [f"http://127.0.0.1:{port}/x.jpg"], download_allow=f"127.0.0.1:{port}"
    )
    assert (rows[0].status, rows[0].error) == ("failed", "connection")


def test_per_host_limit_keeps_a_slow_host_from_starving_others(image_server: ImageServer) -> None:
    """The slow host answers only once every fast image is stored: if its queued URLs held
    the global slots, the fast host could never finish and the slow URLs would time out."""
    fast_stored = threading.Event()

    async def slow(_: web.Request) -> web.Response:
        while not fast_stored.is_set():
            await asyncio.sleep(0.02)
        return web.Response(body=make_image((3, 3, 3)), content_type="image/jpeg")

    slow_urls = [image_server.add_route(f"slow/{i}", slow) for i in range(4)]
    fast = ImageServer().start()
    try:
        fast_urls = fast.add_images(4)
        allow = f"{image_server.allow_entry},{fast.allow_entry}"
        settings = _settings(
            image_server,
            download_allow=allow,
            download_concurrency=4,
            download_per_host_concurrency=2,
            download_total_timeout_s=20.0,
            download_read_timeout_s=20.0,
            download_retries=0,
        )
        entries = [UrlEntry(i, u) for i, u in enumerate(slow_urls + fast_urls, start=1)]

        class ReleasingSink(MemorySink):
            def store(self, image: ValidImage, origin: ImageOrigin) -> tuple[str, Status]:
                stored = super().store(image, origin)
                if sum(url in fast_urls for _, url in self.images.values()) == len(fast_urls):
                    fast_stored.set()
                return stored

        rows = Downloader(settings, ReleasingSink()).run(entries)
    finally:
        fast_stored.set()
        fast.stop()
    assert sorted(row.status for row in rows[:4]) == ["duplicate"] * 3 + ["ok"]  # same bytes
    assert [row.status for row in rows[4:]] == ["ok"] * 4


def test_watchdog_gives_pending_urls_a_deadline_row(image_server: ImageServer) -> None:
    """The drips would take 200 s and their own timeout is 30 s: rows saying ``deadline``
    (not ``timeout``) show the run ended at its 1 s watchdog."""
    urls = [image_server.add_route(f"drip/{i}", _drip) for i in range(3)]
    good = image_server.add_image("ok.jpg")
    sink = MemorySink()
    entries = [UrlEntry(i, u) for i, u in enumerate([good, *urls], start=1)]
    settings = _settings(image_server, download_total_timeout_s=30.0, download_read_timeout_s=30.0)
    rows = Downloader(settings, sink).run(entries, timeout_s=1.0)
    assert [(r.status, r.error) for r in rows] == [("ok", None)] + [("failed", "deadline")] * 3


@pytest.mark.parametrize("count", [0, 1])
def test_empty_and_single_lists(image_server: ImageServer, count: int) -> None:
    urls = image_server.add_images(count)
    rows, sink = _run(image_server, urls)
    assert len(rows) == count == len(sink.images)
