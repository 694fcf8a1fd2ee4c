"""An exported model on disk or under an ``s3://`` prefix: graphs, tokenizer, constants, manifest.

Layout of one export, ``{PIXSEARCH_ONNX_DIR}/{model-tag}/``::

    manifest.json        written last: source model + tag, dim, constants, files + sha256
    image.onnx           image encoder, (batch, 3, H, W) float32 -> (batch, dim), unit rows
    text.onnx            text encoder, (batch, context) int64 -> (batch, dim), unit rows
    image.int8.onnx      int8 graphs (by default; ``--quantize none`` leaves them out)
    text.int8.onnx
    bpe_simple_vocab_16e6.txt.gz   the tokenizer's merges

A manifest names files only once they are complete, so a directory with a
manifest is a whole export. Reading an export checks file sizes (cheap, every
start); copying one from S3 checks every checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pixsearch.config import Settings
from pixsearch.inference.model import ModelUnavailable
from pixsearch.inference.preprocess import Preprocessing

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "int8")
# int8 graphs run by default only where, on the export's probes, every vector of
# theirs is at least this close (cosine) to the source model's.
MIN_INT8_COSINE = 0.99
CHUNK = 1 << 20


@dataclass(frozen=True)
class TokenizerSpec:
    merges: str
    context_length: int
    clean: str = "lower"


@dataclass(frozen=True)
class ExportManifest:
    model: str
    pretrained: str
    model_tag: str
    dim: int
    preprocessing: Preprocessing
    tokenizer: TokenizerSpec
    graphs: dict[str, dict[str, str]]  # precision -> {"image": file, "text": file}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> sha256, bytes
    exported_with: dict[str, str] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "model": self.model,
                "pretrained": self.pretrained,
                "model_tag": self.model_tag,
                "dim": self.dim,
                "preprocessing": self.preprocessing.to_json(),
                "tokenizer": vars(self.tokenizer),
                "graphs": self.graphs,
                "files": self.files,
                "exported_with": self.exported_with,
                "quality": self.quality,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> ExportManifest:
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"export format {data.get('format_version')} is not {FORMAT_VERSION}")
        return cls(
            model=data["model"],
            pretrained=data["pretrained"],
            model_tag=data["model_tag"],
            dim=int(data["dim"]),
            preprocessing=Preprocessing.from_json(data["preprocessing"]),
            tokenizer=TokenizerSpec(**data["tokenizer"]),
            graphs=data["graphs"],
            files=data["files"],
            exported_with=data.get("exported_with", {}),
            quality=data.get("quality", {}),
        )


@dataclass(frozen=True)
class ExportedModel:
    """A complete export in a local directory."""

    directory: Path
    manifest: ExportManifest

    def path(self, name: str) -> Path:
        return self.directory / name


def choose_precision(graphs: dict[str, dict[str, str]], quality: dict[str, Any]) -> tuple[str, str]:
    """``PIXSEARCH_ONNX_PRECISION=auto``: int8 where the export measured it close enough, else fp32.

    Takes a manifest's ``graphs`` and ``quality``; returns the precision and why, for the log.
    """
    measured = quality.get("int8")
    if "int8" not in graphs or not measured:
        return "fp32", "the export has no int8 graphs (`pixsearch model export --force` adds them)"
    worst = min(measured["image_cosine_min"], measured["text_cosine_min"])
    if worst >= MIN_INT8_COSINE:
        return "int8", (
            f"their lowest cosine to the source model on the export's probes is {worst:.5f} "
            f">= {MIN_INT8_COSINE} (PIXSEARCH_ONNX_PRECISION=fp32 runs the fp32 graphs)"
        )
    return "fp32", (
        f"the int8 graphs' lowest cosine to the source model on the export's probes is "
        f"{worst:.5f} < {MIN_INT8_COSINE}, too far for the default"
    )


def location(settings: Settings) -> str:
    """Where exports live: ``PIXSEARCH_ONNX_DIR`` (a directory or ``s3://`` prefix)."""
    return settings.onnx_dir or str(settings.data_dir / "models")


def model_location(base: str, tag: str) -> str:
    return f"{base.rstrip('/')}/{tag}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def find(settings: Settings) -> ExportedModel | None:
    """The export of the configured model, or ``None`` when there is none (yet).

    An export under ``s3://`` is copied once into ``PIXSEARCH_MODEL_CACHE_DIR``.
    An export that exists but is damaged or of another model is an error.
    """
    where = model_location(location(settings), settings.model_tag)
    if where.startswith("s3://"):
        directory = _copy_from_s3(where, settings.model_cache_dir)
        if directory is None:
            return None
    else:
        directory = Path(where)
        if not (directory / MANIFEST).is_file():
            return None
    return read(directory, settings.model_tag)


def read(directory: Path, expected_tag: str | None = None) -> ExportedModel:
    try:
        manifest = ExportManifest.from_json((directory / MANIFEST).read_text())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelUnavailable(
            f"the exported model in {directory} is unreadable ({error}); "
            "run `pixsearch model export --force` again"
        ) from error
    if expected_tag is not None and manifest.model_tag != expected_tag:
        raise ModelUnavailable(
            f"{directory} holds an export of {manifest.model_tag}, not {expected_tag}"
        )
    for name, info in manifest.files.items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != info["bytes"]:
            raise ModelUnavailable(
                f"exported model file {path} is missing or incomplete; "
                "run `pixsearch model export --force` again"
            )
    return ExportedModel(directory, manifest)


def publish(staged: Path, manifest: ExportManifest, destination: str) -> str:
    """Put a staged export (files without manifest) at ``destination``, manifest last."""
    if destination.startswith("s3://"):
        bucket, prefix = _split_s3(destination)
        s3 = _s3_client()
        for name in manifest.files:
            s3.upload_file(str(staged / name), bucket, f"{prefix}/{name}")
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}", Body=manifest.to_json().encode())
        return destination
    (staged / MANIFEST).write_text(manifest.to_json())
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    shutil.move(str(staged), target)
    return str(target)


def published_manifest(destination: str) -> ExportManifest | None:
    """The manifest of the export at ``destination`` (directory or ``s3://``), if there is one."""
    if destination.startswith("s3://"):
        body = _s3_manifest(*_split_s3(destination))
        return None if body is None else ExportManifest.from_json(body.decode())
    path = Path(destination) / MANIFEST
    return ExportManifest.from_json(path.read_text()) if path.is_file() else None


def _s3_manifest(bucket: str, prefix: str) -> bytes | None:
    s3 = _s3_client()
    try:
        return s3.get_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def _copy_from_s3(uri: str, cache_dir: Path) -> Path | None:
    bucket, prefix = _split_s3(uri)
    body = _s3_manifest(bucket, prefix)
    if body is None:
        return None
    s3 = _s3_client()
    manifest = ExportManifest.from_json(body.decode())
    directory = cache_dir / "onnx" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    cached = directory / MANIFEST
    if cached.is_file() and cached.read_bytes() == body:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    cached.unlink(missing_ok=True)
    for name, info in manifest.files.items():
        target = directory / name
        if target.is_file() and sha256_of(target) == info["sha256"]:
            continue
        partial = target.with_name(f"{name}.{os.getpid()}.part")
        s3.download_file(bucket, f"{prefix}/{name}", str(partial))
        if sha256_of(partial) != info["sha256"]:
            partial.unlink()
            raise ModelUnavailable(f"s3://{bucket}/{prefix}/{name} does not match its checksum")
        partial.replace(target)
    cached.write_bytes(body)
    return directory


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ModelUnavailable(f"PIXSEARCH_ONNX_DIR={uri!r} needs a bucket: s3://bucket/prefix")
    return parsed.netloc, parsed.path.strip("/")


def _s3_client() -> Any:
    from pixsearch.storage import client

    return client("s3")
