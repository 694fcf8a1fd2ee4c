"""Vector store benchmark: the faiss and lancedb engines side by side, in one run.

    .venv/bin/python bench/vector_store.py --sizes 100000 300000
    .venv/bin/python bench/vector_store.py --sizes 20000 --queries 50     # smoke run
    .venv/bin/python bench/vector_store.py --sizes 1000000 --engines lancedb --backend ministack

For each size N and each engine, in a bucket of its own on the local object store
(``--backend``, default ``PIXSEARCH_LOCAL_BACKEND``: MiniStack keeps objects on disk,
moto in memory; ``seaweedfs``, objects on disk behind a multi-threaded server, is
a benchmark-only backend, see ``bench/seaweedfs.py``):

* N clustered 512-d unit vectors are written as embedding shards (10,000 rows
  each, with metadata) and published through the port the index stage uses
  (``VectorStore.add``, one shard per call, as one index run per shard would);
* recall@10 of the engine's search against an exact scan, on image-like
  queries (stored vectors moved by neighbour-sized noise);
* ``POST /search`` over loopback HTTP to the Flask app in a process of its own,
  uncached text queries, p50/p99, with a 512-d model of the tiny architecture
  (random weights: encoding is a few milliseconds, so the engine dominates),
  exported once to ONNX and run on onnxruntime as a deployed search function
  does (``--inference torch``: on torch, whose libraries add about 400 MB of
  RSS); the same with a filter matching a fifth of the rows;
* the search process's peak RSS (VmHWM) after the queries;
* time to add 1,000 more vectors (one more index run) to the built store.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.seaweedfs import seaweedfs  # noqa: E402
from pixsearch import shards  # noqa: E402
from pixsearch.config import Settings, get_settings  # noqa: E402
from pixsearch.layout import image_key  # noqa: E402
from pixsearch.runtime.emulator import BACKENDS, LOCAL_CREDENTIALS, free_port, launch  # noqa: E402
from pixsearch.shards import ShardRow  # noqa: E402
from pixsearch.storage import ObjectStore, client  # noqa: E402
from pixsearch.vectorstore.engines import ENGINES, open_store  # noqa: E402

K = 10
DIM = 512
SHARD_ROWS = 10_000
NOISE_ROWS = 100_000  # rows of noise drawn at a time
MODEL = "pixsearch-tiny-512"
LISTS = ("a", "b", "c", "d", "e")
# The tiny architecture with 512-d embeddings, registered by the API process below.
MODEL_CONFIG = {
    "embed_dim": DIM,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
SERVER = """
import os, sys
if os.environ["PIXSEARCH_INFERENCE"] == "torch":
    import open_clip
    open_clip.add_model_config(sys.argv[1])
from pixsearch.config import get_settings
from pixsearch.search.flask_app import create_flask_app
settings = get_settings()
create_flask_app().run(host="127.0.0.1", port=settings.api_port, threaded=True)
"""


def clustered(count: int, seed: int) -> np.ndarray:
    """Unit vectors around ``count // 100`` centres (real embeddings cluster; uniform ones
    have no neighbourhoods)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, count // 100), DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), count)]
    for first in range(0, count, NOISE_ROWS):  # the same draws as one call, a fraction of its
        part = vectors[first : first + NOISE_ROWS]  # float64 memory (16 GB at 2M rows)
        part += rng.standard_normal(part.shape).astype(np.float32) * 0.9
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    return vectors


def rows(first: int, count: int) -> list[ShardRow]:
    return [
        ShardRow(
            key=image_key(f"{n:064x}", "jpg"),
            etag=f"e{n}",
            source_url=f"https://img{n % 7}.example/{n}.jpg",
            width=640,
            height=480,
            list_name=LISTS[n % len(LISTS)],
            fetched_at="2026-01-01T00:00:00Z",
            bytes=100_000,
        )
        for n in range(first, first + count)
    ]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
    }


def post(connection: http.client.HTTPConnection, body: dict) -> dict:
    connection.request("POST", "/search", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"/search answered {response.status}: {answer}")
    return answer


def model_configs(work: Path) -> Path:
    """The directory of ``MODEL``'s open_clip config (registered in each process using it)."""
    configs = work / "configs"
    configs.mkdir(exist_ok=True)
    (configs / f"{MODEL}.json").write_text(json.dumps(MODEL_CONFIG))
    return configs


def export_model(work: Path) -> Path:
    """``MODEL`` exported to ONNX under ``work`` (what the search process runs)."""
    import open_clip

    from bench.embed import ensure_export

    open_clip.add_model_config(model_configs(work))
    return ensure_export(MODEL, work / "onnx")


def serve(env: dict[str, str], work: Path, engine: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = (work / f"api-{engine}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(model_configs(work))],
        env={**env, "PIXSEARCH_API_PORT": str(port), "PIXSEARCH_VECTOR_STORE": engine},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"search API exited; see {work}/api-{engine}.log")
        try:
            post(http.client.HTTPConnection("127.0.0.1", port, timeout=120), {"query_text": "w"})
            return process, port
        except (OSError, RuntimeError):
            time.sleep(0.2)
    raise RuntimeError("search API did not answer")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def measure(engine: str, size: int, args: argparse.Namespace, env: dict, work: Path) -> dict:
    bucket = f"bench-{engine}-{size}"
    client("s3").create_bucket(Bucket=bucket)
    store = ObjectStore(bucket)
    settings = Settings(bucket=bucket, model=MODEL, pretrained="", vector_store=engine)
    tag = settings.model_tag
    target = open_store(settings, store, tag)
    vectors = clustered(size, seed=size)
    started = time.perf_counter()
    for first in range(0, size, SHARD_ROWS):
        part = vectors[first : first + SHARD_ROWS]
        shard_id = shards.write(store, tag, rows(first, len(part)), part)
        began = time.perf_counter()
        target.add([shards.read(store, tag, shard_id)])
        took = time.perf_counter() - began
        print(f"  {engine} {first + len(part)}/{size} add {took:.1f} s", flush=True)
    result: dict = {
        "engine": engine,
        "backend": args.backend,
        "inference": args.inference,
        "vectors": size,
        "build_s": round(time.perf_counter() - started),
    }

    reader = open_store(settings.model_copy(update={"search_refresh_s": 3600}), store, tag)
    rng = np.random.default_rng(1)
    picks = rng.choice(size, args.queries, replace=False)
    queries = vectors[picks] + rng.standard_normal((args.queries, DIM)).astype(np.float32) * (
        0.5 / np.sqrt(DIM)
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    found = 0
    for query in queries:
        exact = set(np.argpartition(-(vectors @ query), K)[:K].tolist())
        hits = reader.search(query, K).hits
        found += len(exact & {int(hit.key.split("/")[-1].split(".")[0], 16) for hit in hits})
    result["recall_at_10"] = round(found / (K * len(queries)), 4)

    process, port = serve({**env, "PIXSEARCH_BUCKET": bucket}, work, engine)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        plain, filtered = [], []
        for number in range(args.queries):
            for samples, extra in ((plain, {}), (filtered, {"filter": {"list": "c"}})):
                text = f"query {engine} {size} {number} {bool(extra)}"
                body = {"query_text": text, "k": K, **extra}
                began = time.perf_counter()
                answer = post(connection, body)
                samples.append(time.perf_counter() - began)
                assert len(answer["results"]) == K, answer
                assert not extra or {r["list_name"] for r in answer["results"]} == {"c"}
        result["search"] = percentiles(plain)
        result["filtered_search"] = percentiles(filtered)
        result["search_peak_rss_mb"] = peak_rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)

    more = clustered(1000, seed=size + 1)
    shard_id = shards.write(store, tag, rows(size, 1000), more)
    batch = shards.read(store, tag, shard_id)
    began = time.perf_counter()
    target.add([batch])
    result["add_1000_s"] = round(time.perf_counter() - began, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "seaweedfs"), default=get_settings().local_backend
    )
    parser.add_argument("--inference", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    # A time limit's SIGTERM unwinds like an error, so the emulator and API processes stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="pixsearch-bench-vectors-"))
    results = []
    log_path = work / f"{args.backend}.log"
    if args.backend == "seaweedfs":
        emulator = seaweedfs(free_port(), work / "store", log_path)
    else:
        data_dir = work / "store" if args.backend == "ministack" else None
        emulator = launch(args.backend, port=free_port(), data_dir=data_dir, log_path=log_path)
    with emulator as server:
        env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": server.endpoint_url,
            "PIXSEARCH_MODEL": MODEL,
            "PIXSEARCH_PRETRAINED": "",
            "PIXSEARCH_SEARCH_REFRESH_S": "3600",
            "PIXSEARCH_DATA_DIR": str(work),
            "PIXSEARCH_INFERENCE": args.inference,
            "PYTHONPATH": str(ROOT),
        }
        if args.inference == "onnx":
            env["PIXSEARCH_ONNX_DIR"] = str(export_model(work))
        os.environ.update(env)
        client.cache_clear()
        for size in args.sizes:
            for engine in args.engines:
                print(f"{engine} at {size} ...", flush=True)
                results.append(measure(engine, size, args, env, work))
                print(json.dumps(results[-1]), flush=True)
                if args.json:  # each result as it comes: a run cut short keeps what it measured
                    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
