"""Search benchmark: the served /search against its bare parts, in one run.

    .venv/bin/python bench/search.py                 # 100k x 512, ViT-B-32 text tower
    .venv/bin/python bench/search.py --vectors 5000 --model pixsearch-tiny   # smoke run
    .venv/bin/python bench/search.py --cold-start-only   # cold starts only, both runtimes

A moto server holds an index of random unit vectors published the way the index
stage publishes it (one segment, IVF above ``index_flat_max``). The vectors are
drawn around random cluster centres: uniformly random high-dimensional vectors
have no neighbourhoods at all, so no approximate index could beat a scan on
them, while CLIP embeddings do cluster. The model has random weights (the same
compute as trained ones). Measured, interleaved in rounds so that load from
other processes hits both sides alike:

* bare cost: ``encode_text`` of one new query + FAISS search of one vector on
  the same serialized index with the manifest's parameters;
* ``POST /search`` over loopback HTTP to the Flask app (functions/search/local.py
  in its own process), with new texts (uncached) and a repeated text (cached);
* 4 concurrent clients: requests/s, p50, p99;
* the live index against an exact flat scan: p50 and recall@10;
* cold start: a new API process, from spawn to its first answer to a text query,
  over a ``--vectors`` index, for each model of ``--cold-models`` (exported once
  into ``--onnx-dir``) on each side of ``COLD_SIDES`` (ONNX at its default
  precision, ONNX fp32, torch), ``--cold-repeats`` times, alternating the sides.

The served comparison runs the model on torch (its bare side calls open_clip).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search_harness import (  # noqa: E402
    ApiProcess,
    K,
    bench_environment,
    clustered_vectors,
    concurrent,
    percentiles,
    post,
    publish,
    timed,
)

from pixsearch.config import Settings  # noqa: E402
from pixsearch.index import calibration  # noqa: E402
from pixsearch.index import segment as segments  # noqa: E402
from pixsearch.runtime.emulator import (  # noqa: E402
    free_port,
    launch,
)
from pixsearch.storage import ObjectStore, client  # noqa: E402


def measure_served(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict:
    """Bare parts and the served API on the ``args.model`` index, interleaved in rounds."""
    import torch

    from pixsearch.inference import load_model

    settings = Settings(
        bucket="bench",
        model=args.model,
        pretrained="",
        torch_threads=args.threads,
        inference="torch",
    )
    store = ObjectStore("bench")
    model = load_model(settings)
    faiss.omp_set_num_threads(args.threads)
    print(f"building a {args.vectors} x {model.dim} index ...", flush=True)
    vectors = clustered_vectors(args.vectors, model.dim)
    started = time.perf_counter()
    entry = publish(store, settings.model_tag, vectors, settings.index_flat_max).segments[0]
    results: dict = {
        "index": {
            "factory": entry.factory,
            "params": entry.params,
            "build_s": round(time.perf_counter() - started, 1),
        }
    }
    live = segments.load(store, settings.model_tag, entry, model.dim).index
    params = segments.search_parameters(entry, None)
    flat = faiss.IndexFlatIP(model.dim)
    flat.add(vectors)
    rng = np.random.default_rng(7)
    # Image-like queries: stored vectors moved about as far as their neighbours are.
    near = vectors[rng.integers(0, len(vectors), 200)]
    near = (near + rng.standard_normal(near.shape) * 0.5 / np.sqrt(model.dim)).astype(np.float32)
    faiss.normalize_L2(near)
    # Worst case: directions unrelated to the data (a random model's text embeddings are).
    unrelated = np.vstack(
        [
            model.encode_texts([f"probe {i}" for i in range(50)]),
            rng.standard_normal((50, model.dim)),
        ]
    ).astype(np.float32)
    faiss.normalize_L2(unrelated)
    results["recall_at_10"] = {}
    for name, queries in (("image_like", near), ("unrelated", unrelated)):
        _, exact = flat.search(queries, K)
        _, found = live.search(queries, K, params=params)
        results["recall_at_10"][name] = round(calibration.recall_at_k(found, exact), 4)
    probes = np.vstack([near, unrelated])

    def bare_encode(text: str) -> None:
        with torch.inference_mode():
            model.module.encode_text(model.tokenizer([text]))

    api = ApiProcess(
        {
            **env,
            "PIXSEARCH_MODEL": args.model,
            "PIXSEARCH_INFERENCE": "torch",
            "PIXSEARCH_TORCH_THREADS": str(args.threads),
            "OMP_NUM_THREADS": str(args.threads),
        },
        work / "api.log",
    )
    api.start()
    connection = api.connect()
    cached = {"query_text": "the cached query", "k": K}
    post(connection, cached)
    names = ("encode", "faiss", "flat", "uncached", "cached", "uncached_server", "cached_server")
    samples: dict[str, list[float]] = {name: [] for name in names}

    def served(kind: str, body: dict) -> None:
        started = time.perf_counter()
        status, answer = post(connection, body)
        samples[kind].append(time.perf_counter() - started)
        samples[f"{kind}_server"].append(answer["took_ms"] / 1000)
        assert status == 200 and len(answer["results"]) == K, answer

    number = 0
    for _ in range(args.rounds):
        for _ in range(args.per_round):
            number += 1
            query = probes[number % len(probes)][None]
            samples["encode"].append(timed(bare_encode, f"bare query {number}"))
            samples["faiss"].append(timed(live.search, query, K, params=params))
            samples["flat"].append(timed(flat.search, query, K))
        for _ in range(args.per_round):
            number += 1
            body = {"query_text": f"served query {number}", "k": K}
            served("uncached", body)
            served("cached", cached)
    measured = {name: percentiles(values) for name, values in samples.items()}
    bare = measured["encode"]["p50_ms"] + measured["faiss"]["p50_ms"]
    results["single_client"] = measured
    results["bare_cost_p50_ms"] = bare
    results["uncached_ratio"] = measured["uncached"]["p50_ms"] / bare
    results["cached_overhead_ms"] = measured["cached"]["p50_ms"] - measured["faiss"]["p50_ms"]
    each = max(4, args.rounds * args.per_round // args.clients)
    results["concurrent"] = {
        "clients": args.clients,
        "uncached": concurrent(api, args.clients, each, lambda i: f"concurrent query {i}"),
        "cached": concurrent(api, args.clients, each * 4, lambda i: "the cached query"),
    }
    api.stop()
    return results


# Each cold-start side's runtime settings: ONNX as shipped (PIXSEARCH_ONNX_PRECISION=auto
# picks int8 where the export measured it close enough), ONNX fp32, torch.
COLD_SIDES = {
    "onnx": {"PIXSEARCH_INFERENCE": "onnx"},
    "onnx fp32": {"PIXSEARCH_INFERENCE": "onnx", "PIXSEARCH_ONNX_PRECISION": "fp32"},
    "torch": {"PIXSEARCH_INFERENCE": "torch"},
}


def measure_cold_start(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict:
    """New API processes over a ``--vectors`` index: spawn to first answer, per model, runtime."""
    from bench.embed import ensure_export
    from pixsearch.inference import exported

    results: dict = {}
    for number, model in enumerate(args.cold_models.split(",")):
        ensure_export(model, args.onnx_dir)
        settings = Settings(
            bucket=f"bench-cold-{number}", model=model, pretrained="", onnx_dir=str(args.onnx_dir)
        )
        export = exported.find(settings)
        assert export is not None
        client("s3").create_bucket(Bucket=settings.bucket)
        vectors = clustered_vectors(args.vectors, export.manifest.dim, seed=3)
        publish(ObjectStore(settings.bucket), settings.model_tag, vectors, settings.index_flat_max)
        runs: dict[str, list[float]] = {side: [] for side in COLD_SIDES}
        logs: dict[str, list[str]] = {}
        for repeat in range(args.cold_repeats):
            for runtime, side_env in COLD_SIDES.items():
                log_path = work / f"cold-{number}-{runtime.replace(' ', '-')}-{repeat}.log"
                api = ApiProcess(
                    {
                        **env,
                        **side_env,
                        "PIXSEARCH_MODEL": model,
                        "PIXSEARCH_BUCKET": settings.bucket,
                        "PIXSEARCH_ONNX_DIR": str(args.onnx_dir),
                        "PIXSEARCH_TORCH_THREADS": str(args.threads),
                    },
                    log_path,
                )
                runs[runtime].append(api.start())
                api.stop()
                logs[runtime] = [
                    line.split(": ", 1)[-1]
                    for line in log_path.read_text().splitlines()
                    if any(part in line for part in ("cold start", "loaded index", "graphs: "))
                ]
                print(f"  cold start {model} on {runtime}: {runs[runtime][-1]:.2f}s", flush=True)
        results[model] = {
            runtime: {
                "median_s": round(statistics.median(seconds), 2),
                "min_s": round(min(seconds), 2),
                "max_s": round(max(seconds), 2),
                "log": logs[runtime],
            }
            for runtime, seconds in runs.items()
        }
    return {"cold_start": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--threads",
        type=int,
        default=Settings().torch_threads,
        help="torch and FAISS threads, the same for the bare loop and the API process",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cold-start-only", action="store_true", help="skip the served part")
    parser.add_argument("--cold-models", default="pixsearch-tiny,ViT-B-32")
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "pixsearch-bench-onnx",
        help="where the models are exported once and kept",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pixsearch-bench-search-"))
    with launch("moto", port=free_port(), log_path=work / "moto.log") as moto:
        env = bench_environment(moto, work, PIXSEARCH_SEARCH_REFRESH_S="3600")
        results = {"vectors": args.vectors, "model": args.model}
        if not args.cold_start_only:
            results.update(measure_served(args, env, work))
        results.update(measure_cold_start(args, env, work))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
