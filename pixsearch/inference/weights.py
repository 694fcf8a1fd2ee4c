"""Where a model's weights come from: nothing, an open_clip tag, a local file or ``s3://``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlparse

from pixsearch.inference.model import ModelUnavailable
from pixsearch.layout import names_a_file
from pixsearch.storage import ObjectStore


def unavailable(model: str, pretrained: str, reason: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"weights for model {model!r} could not be obtained from PIXSEARCH_PRETRAINED="
        f"{pretrained!r}: {reason}. Set PIXSEARCH_PRETRAINED to an open_clip tag reachable "
        "from this machine, a local checkpoint file or an s3://bucket/key URI "
        "(or PIXSEARCH_MODEL to another model)"
    )


def resolve(model: str, pretrained: str, cache_dir: Path) -> str | None:
    """What to hand open_clip as ``pretrained``: ``None`` (random init), a tag or a file path.

    An ``s3://`` URI is downloaded once into ``cache_dir``; a path must name an
    existing file. Anything else is passed on as an open_clip tag.
    """
    if not pretrained:
        return None
    if pretrained.startswith("s3://"):
        return _download(model, pretrained, cache_dir)
    if names_a_file(pretrained):
        if not Path(pretrained).is_file():
            raise unavailable(model, pretrained, "no such file")
        return pretrained
    return pretrained


def _download(model: str, uri: str, cache_dir: Path) -> str:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if not parsed.netloc or not key:
        raise unavailable(model, uri, "an s3 URI needs a bucket and a key")
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    target = cache_dir / digest / Path(key).name
    if target.is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    store = ObjectStore(parsed.netloc)
    try:
        store.s3.download_file(parsed.netloc, key, str(partial))
    except Exception as error:  # noqa: BLE001 - any failure means the same thing to the user
        partial.unlink(missing_ok=True)
        raise unavailable(model, uri, f"download failed ({error})") from error
    partial.replace(target)
    return str(target)
