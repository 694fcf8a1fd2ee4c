"""The bucket key layout, in one place (see DESIGN.md, "Bucket layout")."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import PurePosixPath

URLS = "urls/"
IMAGES = "images/"
MAPS = "maps/"
EMBEDDINGS = "embeddings/"
INDEX = "index/"

PREFIXES = (URLS, IMAGES, MAPS, EMBEDDINGS, INDEX)

SHARD_SUFFIX = ".npy"
SHARD_IDS_SUFFIX = ".ids.json"
MANIFEST_NAME = "MANIFEST.json"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
"""File names ending so name a checkpoint file, not an open_clip weights tag."""

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def names_a_file(pretrained: str) -> bool:
    """Whether ``pretrained`` is a checkpoint's location (path or URI) rather than a tag."""
    return "/" in pretrained or os.sep in pretrained or pretrained.endswith(WEIGHT_SUFFIXES)


def model_tag(model: str, pretrained: str) -> str:
    """A key-safe tag naming model and weights, e.g. ``ViT-B-32__laion2b_s34b_b79k``.

    A checkpoint is named by its file name plus a digest of its whole location (the
    URI, or the absolute path), so ``run1/model.pt`` and ``run2/model.pt`` never share
    an index, and the tag stays short.
    """
    weights = pretrained or "none"
    if names_a_file(pretrained):
        location = pretrained.rstrip("/")
        if not _URI.match(location):
            location = os.path.abspath(os.path.expanduser(location))
        digest = hashlib.sha256(location.encode()).hexdigest()[:12]
        weights = f"{PurePosixPath(location.replace(os.sep, '/')).name}-{digest}"
    return f"{_UNSAFE.sub('-', model)}__{_UNSAFE.sub('-', weights)}"


def image_key(sha256: str, ext: str) -> str:
    return f"{IMAGES}{sha256[:2]}/{sha256}.{ext.lstrip('.').lower()}"


def list_name(url_list_key: str) -> str:
    """``urls/a/b.txt.gz`` -> ``a/b.txt.gz``: the name a URL list's parts, map and summary
    live under. The whole key after ``urls/``, so ``a.txt``, ``a.csv`` and ``a.txt.gz``
    are three lists."""
    return url_list_key.removeprefix(URLS)


def url_map_key(list_name: str, part: int) -> str:
    return f"{MAPS}{list_name}/{part:05d}.jsonl"


def url_map_prefix(list_name: str) -> str:
    return f"{MAPS}{list_name}/"


def summary_key(list_name: str) -> str:
    return f"{MAPS}{list_name}/_SUMMARY.json"


PARTS = "parts/"
"""Parts of URL lists, one invocation's worth each. No trigger watches this prefix: the
download stage queues each part itself, so a part can never re-trigger the list."""

_NUMBERED = re.compile(r"^(?P<name>.+)/(?P<part>\d{5})\.(?P<ext>jsonl|json)$")


def part_key(list_name: str, part: int) -> str:
    return f"{PARTS}{list_name}/{part:05d}.json"


def parse_part_key(key: str) -> tuple[str, int]:
    """``parts/{list-name}/{part}.json`` -> ``(list-name, part)``; ValueError otherwise."""
    match = _NUMBERED.match(key.removeprefix(PARTS)) if key.startswith(PARTS) else None
    if match is None or match["ext"] != "json":
        raise ValueError(f"not a URL list part key: {key!r}")
    return match["name"], int(match["part"])


PROGRESS = "progress/"
"""Counters of list parts being downloaded right now (gone once the part's map is written).
No trigger watches this prefix."""


def part_progress_key(list_name: str, part: int) -> str:
    return f"{PROGRESS}{list_name}/{part:05d}.json"


def parse_url_map_key(key: str) -> tuple[str, int]:
    """``maps/{list-name}/{part}.jsonl`` -> ``(list-name, part)``; ValueError otherwise."""
    match = _NUMBERED.match(key.removeprefix(MAPS)) if key.startswith(MAPS) else None
    if match is None or match["ext"] != "jsonl":
        raise ValueError(f"not a URL map key: {key!r}")
    return match["name"], int(match["part"])


def embeddings_prefix(tag: str) -> str:
    return f"{EMBEDDINGS}{tag}/"


def shard_ids_key(tag: str, shard_id: str) -> str:
    return f"{EMBEDDINGS}{tag}/{shard_id}{SHARD_IDS_SUFFIX}"


def shard_key(tag: str, shard_id: str) -> str:
    return f"{EMBEDDINGS}{tag}/{shard_id}{SHARD_SUFFIX}"


def parse_shard_key(key: str) -> tuple[str, str]:
    """``embeddings/{tag}/{shard}.npy`` -> ``(tag, shard)``; ValueError otherwise."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != EMBEDDINGS or not parts[2].endswith(SHARD_SUFFIX):
        raise ValueError(f"not an embedding shard key: {key!r}")
    return parts[1], parts[2].removesuffix(SHARD_SUFFIX)


def index_prefix(tag: str) -> str:
    return f"{INDEX}{tag}/"


def segment_key(tag: str, segment_id: str) -> str:
    return f"{INDEX}{tag}/segments/{segment_id}.faiss"


def manifest_key(tag: str) -> str:
    return f"{INDEX}{tag}/{MANIFEST_NAME}"


def segment_rows_key(tag: str, segment_id: str) -> str:
    """Who a segment's rows are (key, source URL, size), in FAISS row order."""
    return f"{INDEX}{tag}/segments/{segment_id}.rows.parquet"


def segment_keys_key(tag: str, segment_id: str) -> str:
    """64-bit hashes of a segment's image keys, in row order (for dedup and tombstones)."""
    return f"{INDEX}{tag}/segments/{segment_id}.keys.npy"


def segments_prefix(tag: str) -> str:
    return f"{INDEX}{tag}/segments/"


def quantizer_key(tag: str, quantizer_id: str) -> str:
    """The index's trained, empty IVF template that its IVF segments share."""
    return f"{INDEX}{tag}/quantizers/{quantizer_id}.faiss"


def shard_set_key(tag: str, set_id: str) -> str:
    """Shard ids folded into the index, as one immutable sorted array."""
    return f"{INDEX}{tag}/shardsets/{set_id}.npy"


def manifest_version_key(tag: str, version: int) -> str:
    """An immutable copy of each published manifest, kept for recovery."""
    return f"{INDEX}{tag}/manifests/{version:010d}.json"


def manifest_versions_prefix(tag: str) -> str:
    return f"{INDEX}{tag}/manifests/"
