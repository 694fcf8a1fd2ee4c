"""What the search benchmarks share: clustered vectors, an index published as the
index stage publishes it, the environment of a benchmark's API process, and that
process itself (bench/search.py, bench/load.py).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixsearch import layout  # noqa: E402
from pixsearch.config import Settings  # noqa: E402
from pixsearch.index import manifest as manifests  # noqa: E402
from pixsearch.index import quantizer as quantizers  # noqa: E402
from pixsearch.index import segment as segments  # noqa: E402
from pixsearch.runtime.emulator import (  # noqa: E402
    LOCAL_CREDENTIALS,
    EmulatorProcess,
    free_port,
)
from pixsearch.storage import ObjectStore, client  # noqa: E402

K = 10


def clustered_vectors(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``count // 100`` random centres (noise comparable to the spread)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, count // 100), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), count)]
    vectors += rng.standard_normal((count, dim)).astype(np.float32) * 0.9
    faiss.normalize_L2(vectors)
    return vectors


def publish(store: ObjectStore, tag: str, vectors: np.ndarray, flat_max: int) -> manifests.Manifest:
    """One segment over ``vectors`` and a manifest naming it, as the index stage writes them
    (flat up to ``flat_max``, else IVF-SQ8 from a template trained on these vectors)."""
    count = len(vectors)
    keys = [layout.image_key(f"{i:064x}", "jpg") for i in range(count)]
    rows = segments.Rows.of(
        keys, [f"https://img.example/{i}.jpg" for i in range(count)], [640] * count, [480] * count
    )
    template = None
    if count <= flat_max:
        built = segments.build_flat(vectors, rows)
    else:
        template, data = quantizers.train(vectors, Settings().index_ivf_nlist)
        quantizers.save(store, tag, template[0], data)
        built = segments.build_ivf(vectors, rows, template)
    manifest = manifests.Manifest(
        model_tag=tag,
        dim=vectors.shape[1],
        version=1,
        segments=(segments.save(store, tag, built),),
        quantizer=template[0] if template else None,
    )
    manifests.publish(store, manifest, None)
    return manifest


def bench_environment(moto: EmulatorProcess, work: Path, **settings: str) -> dict[str, str]:
    """The environment of a run over ``moto`` (also set in this process), with its bucket."""
    env = {
        **os.environ,
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "PIXSEARCH_BUCKET": "bench",
        "PIXSEARCH_PRETRAINED": "",
        "PIXSEARCH_DATA_DIR": str(work),
        **settings,
    }
    os.environ.update(env)
    client.cache_clear()
    client("s3").create_bucket(Bucket="bench")
    return env


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"p50_ms": statistics.median(ms), "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))]}


def timed(call: Callable[..., object], *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    call(*args, **kwargs)
    return time.perf_counter() - started


class ApiProcess:
    """functions/search/local.py in a process of its own, on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {**env, "PIXSEARCH_API_PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Spawn the process; seconds until its first 200 answer to a text search."""
        started = time.perf_counter()
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "functions" / "search" / "local.py")],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"search API exited; see {self.log_path}")
            try:
                status, _ = post(self.connect(), {"query_text": "warm up", "k": K})
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.02)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def post(connection: http.client.HTTPConnection, body: dict) -> tuple[int, dict]:
    connection.request("POST", "/search", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def concurrent(api: ApiProcess, clients: int, requests_each: int, texts: Callable[[int], str]):
    """``clients`` keep-alive clients in threads; overall requests/s and latency percentiles."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(number: int) -> None:
        connection = api.connect()
        mine = []
        for i in range(requests_each):
            text = texts(number * requests_each + i)
            mine.append(timed(post, connection, {"query_text": text, "k": K}))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"requests_per_s": len(latencies) / elapsed, **percentiles(latencies)}
