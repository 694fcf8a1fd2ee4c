"""Settings, read once from the environment (``PIXSEARCH_*``).

Endpoints are deliberately absent: boto3 reads the standard ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3`` and ``AWS_ENDPOINT_URL_SQS`` variables itself, so the same
code talks to moto, LocalStack, MinIO or AWS.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every tunable of pixsearch. Environment variable = ``PIXSEARCH_`` + field name."""

    model_config = SettingsConfigDict(env_prefix="PIXSEARCH_", extra="ignore", frozen=True)

    # Object store and queues
    bucket: str = "pixsearch"
    queue_prefix: str = "pixsearch-"
    region: str = Field(default="us-east-1")

    # Model
    model: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"
    # Threads of the model runtime, torch or onnxruntime alike.
    torch_threads: int = Field(default=2, ge=1)
    # auto: ONNX where an export of the model exists (`pixsearch model export`), else torch.
    inference: Literal["auto", "onnx", "torch"] = "auto"
    # Where exports live: a directory or an s3:// prefix (default: {data_dir}/models).
    onnx_dir: str = ""
    # auto: the int8 graphs where the export measured them close enough to the
    # source model (see pixsearch.inference.exported.choose_precision), else fp32.
    onnx_precision: Literal["auto", "fp32", "int8"] = "auto"
    embed_batch_size: int = Field(default=32, ge=1)
    # Encodes of embed batches one process runs at once (0: CPU cores // model threads,
    # at least 1): the local runtime runs two embed batches at a time, and two encodes
    # of PIXSEARCH_TORCH_THREADS threads each on cores for one only slow both down.
    embed_parallel_encodes: int = Field(default=0, ge=0)
    device: str = "cpu"
    # Where weights named by an s3:// PIXSEARCH_PRETRAINED are downloaded to (once).
    model_cache_dir: Path = Path(tempfile.gettempdir()) / "pixsearch-weights"

    # Download
    # The memory the download function may use (worst case, with margin); every memory
    # limit of the stage derives from it. On Lambda it is the function's memory.
    download_memory_mb: int = Field(
        default=1024,
        ge=128,
        validation_alias=AliasChoices(
            "PIXSEARCH_DOWNLOAD_MEMORY_MB", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "download_memory_mb"
        ),
    )
    download_concurrency: int = Field(default=64, ge=1)
    download_per_host_concurrency: int = Field(default=16, ge=1)
    download_connect_timeout_s: float = Field(default=10.0, gt=0)
    download_read_timeout_s: float = Field(default=20.0, gt=0)
    download_total_timeout_s: float = Field(default=60.0, gt=0)
    download_retries: int = Field(default=2, ge=0)
    download_retry_after_cap_s: float = Field(default=10.0, ge=0)
    download_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    download_max_redirects: int = Field(default=5, ge=0)
    download_max_pixels: int = Field(default=89_478_485, gt=0)
    download_resize_max_side: int = Field(default=0, ge=0)
    download_respect_robots: bool = True
    download_chunk_size: int = Field(default=1000, ge=1)
    download_user_agent: str = "pixsearch/0.1 (+https://github.com/pixsearch/pixsearch)"
    # Comma-separated host:port pairs or CIDRs that may be fetched although non-public.
    download_allow: str = ""
    download_url_column: str = "url"
    download_caption_column: str = "caption"
    download_backoff_s: float = Field(default=0.5, ge=0)
    download_list_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # Time kept back from the function's deadline to write the URL map of URLs still pending.
    download_deadline_margin_s: float = Field(default=30.0, ge=0)
    # Decode every image to check it; false checks headers and end markers only (faster).
    download_decode: bool = True

    # Index
    # Segments of similar size that merge into one (tiered compaction's fan-out).
    index_compact_segments: int = Field(default=4, ge=2)
    # Segments up to this many rows are exact (Flat); larger ones IVF-SQ8.
    index_flat_max: int = Field(default=50_000, ge=1)
    # Where vectors live: FAISS segments loaded by search, or a LanceDB table queried in place.
    vector_store: Literal["faiss", "lancedb"] = "faiss"
    # LanceDB: rows before an ANN index is built (below, every query is an exact scan),
    # rows added since the last index update before it is folded in, and search effort:
    # this share of the IVF's partitions is searched, and at least ``lance_nprobes`` (a
    # fixed count searches a shrinking share of a growing table: recall@10 fell from
    # 0.995 at 100k rows to 0.94 at 300k with 20; 8% of them gave 0.998 at 300k but
    # 0.943 at 1M, 12% 0.968; at 2M 12% gave 0.930-0.948 over trainings, 20% 0.968-0.973).
    lance_index_min_rows: int = Field(default=5000, ge=256)
    lance_optimize_rows: int = Field(default=2000, ge=1)
    lance_nprobes: int = Field(default=20, ge=1)
    lance_probe_fraction: float = Field(default=0.2, gt=0, le=1)
    # The IVF is retrained (√rows partitions) once the table has this many times the rows
    # it was last trained on, or once optimize has left this many index deltas (each one
    # searched by every query); between trainings optimize folds new rows in as deltas.
    # Under 2: LanceDB splits a partition that reaches about twice its target size, and a
    # split merges every delta, after which compaction rewrites the whole table on each add.
    lance_retrain_growth: float = Field(default=1.5, gt=1)
    lance_max_index_deltas: int = Field(default=16, ge=1)
    # Memory for index partitions read by search (LanceDB's own default is 6 GiB): it bounds
    # how search memory grows with the table; a partition not cached is read again. The
    # IVF_RQ index takes about 152 bytes a row (304 MB at 2M rows), so 512 MB holds it up
    # to about 3.4M rows (at 2M rows, 256 MB made a spread-out query 10 s on MiniStack;
    # with 512 MB, /search p50 was 139 ms).
    lance_index_cache_mb: int = Field(default=512, ge=0)
    # Memory for table metadata (manifests, fragment and page tables; LanceDB's default is
    # 1 GiB): with the index cache, what bounds a search process's LanceDB memory.
    lance_metadata_cache_mb: int = Field(default=128, ge=0)
    # Re-rank this many times k candidates by their full vectors (read together, about a
    # ranged read per data file): the index's two-bit codes alone rank coarsely (recall@10
    # at 1M rows: 0.953 re-ranking 3 times k, 0.973 5 times).
    lance_refine_factor: int = Field(default=5, ge=1)
    # Inverted lists of the IVF template, trained once per index.
    index_ivf_nlist: int = Field(default=1024, ge=1)
    # One index run's memory and time: by default the index function's size as deployed
    # (Lambda's own AWS_LAMBDA_FUNCTION_MEMORY_SIZE, else the topology's, which
    # infra/template.yaml states too). Merges are sized to fit.
    index_memory_mb: int = Field(default_factory=lambda: _index_function_memory_mb(), ge=128)
    index_time_s: float = Field(default_factory=lambda: _index_function_timeout_s(), gt=0)
    # How long unreferenced index objects and expired tombstones are kept: longer than a
    # search instance takes to load a version it has started reading.
    index_grace_s: float = Field(default=3600.0, ge=0)

    # Search
    # The search function's memory (SearchMemorySize in infra/template.yaml): the index
    # stage warns once the segments search must load outgrow it.
    search_memory_mb: int = Field(default=3008, ge=128)
    search_k_max: int = Field(default=100, ge=1)
    search_text_max_chars: int = Field(default=1000, ge=1)
    search_upload_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    search_refresh_s: float = Field(default=5.0, ge=0)
    search_query_cache_size: int = Field(default=1024, ge=0)
    # An image_url query waits for its fetch: a shorter cap than for ingestion.
    search_fetch_timeout_s: float = Field(default=10.0, gt=0)
    # Non-public host:port pairs or CIDRs an image_url query may fetch from. Its own list,
    # empty by default: a public API never inherits the downloader's PIXSEARCH_DOWNLOAD_ALLOW.
    search_image_url_allow: str = ""

    # How the web app and `pixsearch search --api-url` call the search API: "none", or
    # "iam" to sign requests with AWS SigV4 (the deployed API's default ApiAuth).
    api_auth: Literal["none", "iam"] = "none"

    # Local stack
    data_dir: Path = Field(default_factory=lambda: _default_data_dir())
    # The embedded object store + queues `pixsearch up` starts (see pixsearch.runtime.emulator).
    local_backend: Literal["ministack", "moto"] = "ministack"
    # Where it listens (the names predate the choice of backend).
    moto_host: str = "127.0.0.1"
    moto_port: int = 4566
    api_host: str = "127.0.0.1"
    api_port: int = 5001
    # Worker threads of the local API server (waitress) and the connections it accepts.
    api_threads: int = Field(default=16, ge=1)
    api_connection_limit: int = Field(default=256, ge=1)
    # glibc malloc arenas of a process serving the API (0: glibc's default, 8 per core);
    # see pixsearch.search.arenas.
    api_malloc_arenas: int = Field(default=2, ge=0)
    webapp_port: int = 8501
    # Local queues use a short visibility timeout that the dispatcher extends while a
    # batch is in flight, so a failed record is retried in seconds, not hours.
    local_visibility_timeout_s: int = Field(default=30, ge=1)
    poll_wait_s: int = Field(default=1, ge=0, le=20)
    # A local stage's batch is handed over once full, once its batching window ends, or
    # once its queue has had nothing new for this long (Lambda waits out the window).
    local_batch_quiet_s: float = Field(default=0.5, ge=0)
    # Memory for the images the local download stage stored and its embed stage has not
    # read yet (see pixsearch.recent_images); 0 reads every image back from the bucket.
    local_image_cache_mb: int = Field(default=256, ge=0)

    @property
    def model_tag(self) -> str:
        from pixsearch.layout import model_tag

        return model_tag(self.model, self.pretrained)


def _index_function_memory_mb() -> int:
    from pixsearch.topology import stage

    deployed = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    return int(deployed) if deployed.isdigit() else stage("index").memory_mb


def _index_function_timeout_s() -> float:
    from pixsearch.topology import stage

    return float(stage("index").function_timeout_s)


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "pixsearch"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests build their own ``Settings``)."""
    return Settings()
