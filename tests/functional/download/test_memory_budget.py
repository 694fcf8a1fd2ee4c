"""The download stage stays inside its memory budget when every body is as large as allowed.

The downloader runs in a process of its own (as in its Lambda function), fetching 64
images of nearly the byte cap at once from a loopback server; its peak resident
memory must stay under ``PIXSEARCH_DOWNLOAD_MEMORY_MB`` (measured: about 330 MiB of
512; with the pool unbounded the same run peaks near 600 MiB, and 64 such bodies
twice over while being joined could need a gigabyte).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pixsearch.config import Settings
from pixsearch.download.budget import BudgetTooSmall, BytePool, DownloadLimits
from tests.fixtures.images import ImageServer

MIB = 1024 * 1024
BUDGET_MB = 512
MAX_BYTES = 8 * MIB
URLS = 64

_CHILD = """
import json, sys
from pixsearch.config import Settings
from pixsearch.download.downloader import Downloader
from pixsearch.download.urllist import UrlEntry

def peak_rss():
    # VmHWM is this process's own high-water mark (ru_maxrss carries the parent's over exec).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

class NullSink:
    def store(self, image, source_url):
        return f"images/{image.sha256}", "ok"

settings = Settings(**json.loads(sys.argv[1]))
urls = json.loads(sys.argv[2])
rows = Downloader(settings, NullSink()).run([UrlEntry(i, u) for i, u in enumerate(urls, 1)])
print(json.dumps({
    "statuses": sorted({row.status for row in rows}),
    "errors": sorted({row.error for row in rows if row.error}),
    "peak_rss": peak_rss(),
}))
"""


def _largest_image() -> bytes:
    """An uncompressed PNG of noise just under the byte cap: big on the wire and decoded."""
    side = int((MAX_BYTES * 0.9 / 3) ** 0.5)
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def test_many_maximum_size_bodies_at_once_stay_inside_the_budget(
    image_server: ImageServer,
) -> None:
    data = _largest_image()
    assert 0.85 * MAX_BYTES < len(data) <= MAX_BYTES
    urls = [image_server.add_bytes(f"big/{i}.png", data, "image/png") for i in range(URLS)]
    settings = {
        "download_memory_mb": BUDGET_MB,
        "download_max_bytes": MAX_BYTES,
        "download_max_pixels": 4_000_000,
        "download_concurrency": URLS,
        "download_per_host_concurrency": URLS,
        "download_allow": image_server.allow_entry,
        "download_total_timeout_s": 240,
        "download_read_timeout_s": 240,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXSEARCH_")}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(settings), json.dumps(urls)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["statuses"] == ["ok"] and report["errors"] == [], report
    assert image_server.hits["/big/0.png"] == 1
    assert report["peak_rss"] < BUDGET_MB * MIB, f"peak {report['peak_rss'] / MIB:.0f} MiB"


def test_limits_follow_the_budget_and_refuse_what_cannot_fit() -> None:
    small = DownloadLimits.from_settings(Settings(download_memory_mb=1024))
    large = DownloadLimits.from_settings(Settings(download_memory_mb=4096))
    assert large.body_pool_bytes > small.body_pool_bytes
    assert large.list_max_bytes > small.list_max_bytes
    assert large.decode_pool_bytes > small.decode_pool_bytes
    assert small.decode_pool_bytes >= Settings().download_max_pixels * 4  # one of the cap
    for limits in (small, large):
        used = (
            limits.baseline_bytes
            + limits.body_pool_bytes
            + limits.decode_pool_bytes
            + limits.list_max_bytes * 4
        )
        assert used <= limits.memory_bytes * 0.8 + 1
    with pytest.raises(BudgetTooSmall, match="PIXSEARCH_DOWNLOAD_MEMORY_MB=256"):
        DownloadLimits.from_settings(Settings(download_memory_mb=256))


def test_the_lambda_function_memory_is_the_default_budget(monkeypatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
    assert Settings().download_memory_mb == 3008
    monkeypatch.setenv("PIXSEARCH_DOWNLOAD_MEMORY_MB", "2048")
    assert Settings().download_memory_mb == 2048


async def _waits_its_turn() -> list[str]:
    import asyncio

    pool = BytePool(10)
    order: list[str] = []

    async def take(name: str, n: int, hold_s: float) -> None:
        got = await pool.acquire(n)
        order.append(name)
        await asyncio.sleep(hold_s)
        pool.release(got)

    await asyncio.gather(take("a", 6, 0.05), take("b", 6, 0), take("c", 20, 0))
    assert pool.free == 10 and pool.peak_used == 10
    return order


def test_the_byte_pool_serves_in_order_and_never_overcommits() -> None:
    import asyncio

    assert asyncio.run(_waits_its_turn()) == ["a", "b", "c"]
