"""A loopback nginx serving generated photo-like JPEGs: the benchmarks' image source."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"


def make_images(count: int) -> Path:
    """``count`` distinct photo-like JPEGs of 30-300 KB (mean about 100 KB), cached across runs."""
    folder = WORK / "images" / "i"
    marker = WORK / "images" / f"count-{count}"
    if marker.exists():
        return folder
    shutil.rmtree(WORK / "images", ignore_errors=True)
    folder.mkdir(parents=True)
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_image, [(folder, n) for n in range(count)], chunksize=64))
    marker.touch()
    return folder


_NOISE_SHAPE = (700, 900, 3)


@functools.cache
def _noise() -> Any:
    import numpy as np

    rng = np.random.default_rng(7)
    return np.clip(rng.normal(0, 1, _NOISE_SHAPE) * 16, -127, 127).astype(np.int16)


def _write_image(job: tuple[Path, int]) -> None:
    """Smooth colour fields plus grain; the grain is raised or lowered into 30-300 KB."""
    import numpy as np
    from PIL import Image

    folder, n = job
    rng = np.random.default_rng(n)
    width = int(rng.integers(480, 900))
    height = width * 3 // 4
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    base = base.astype(np.int16)
    grain = int(rng.integers(7, 25))
    while True:
        y = int(rng.integers(0, _NOISE_SHAPE[0] - height + 1))
        x = int(rng.integers(0, _NOISE_SHAPE[1] - width + 1))
        pixels = np.clip(base + (_noise()[y : y + height, x : x + width] * grain >> 4), 0, 255)
        buffer = io.BytesIO()
        quality = int(rng.integers(75, 90))
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        size = buffer.tell()
        if size < 30 * 1024:
            grain += 4
        elif size > 300 * 1024:
            grain -= 4
        else:
            break
    (folder / f"{n}.jpg").write_bytes(buffer.getvalue())


def size_stats(folder: Path) -> dict[str, float]:
    sizes = sorted(p.stat().st_size for p in folder.iterdir())
    return {
        "mean_kb": round(sum(sizes) / len(sizes) / 1024, 1),
        "min_kb": round(sizes[0] / 1024, 1),
        "max_kb": round(sizes[-1] / 1024, 1),
    }


class Nginx:
    """nginx serving ``folder`` as /i/ on a free loopback port, from a temporary config."""

    def __init__(self, folder: Path) -> None:
        from pixsearch.runtime.emulator import free_port

        self.folder = folder
        self.port = free_port()
        self.dir = WORK / "nginx"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            sys.exit("nginx not found: make bench-deps (or apt-get install -y nginx)")
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "nginx.conf"
        config.write_text(
            f"""
worker_processes 1;
user root;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    types {{ image/jpeg jpg; }}
    client_body_temp_path {self.dir}/tmp;
    proxy_temp_path {self.dir}/tmp;
    fastcgi_temp_path {self.dir}/tmp;
    uwsgi_temp_path {self.dir}/tmp;
    scgi_temp_path {self.dir}/tmp;
    server {{
        listen 127.0.0.1:{self.port};
        location /i/ {{ alias {self.folder}/; }}
    }}
}}
"""
        )
        (self.dir / "tmp").mkdir(exist_ok=True)
        self.process = subprocess.Popen([binary, "-c", str(config), "-p", str(self.dir)])
        _wait_for_port(self.port)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def write_url_list(port: int, count: int) -> Path:
    path = WORK / "urls.txt"
    path.write_text("".join(f"http://127.0.0.1:{port}/i/{n}.jpg\n" for n in range(count)))
    return path


def _wait_for_port(port: int, timeout_s: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")
