"""Whether the search function can hold an index: it loads every FAISS segment whole.

Search memory is the process (Python, FAISS, the model) plus each segment's codes and
ids (what ``SegmentEntry.bytes`` counts) plus its row table, and a cold load briefly
holds 1.4 times that (bench/index.py: 2,085 MB peak for 1,509 MB settled at 1.97M
vectors). So the segments may fill half of the function's memory before it is
time to give search more.
"""

from __future__ import annotations

from pixsearch.index.manifest import Manifest

SEGMENT_SHARE = 0.5


def search_memory_warning(manifest: Manifest, search_memory_mb: int) -> str | None:
    """Why the search function is too small for ``manifest``; None while it fits."""
    held_mb = sum(entry.bytes for entry in manifest.segments) / 2**20
    if held_mb <= search_memory_mb * SEGMENT_SHARE:
        return None
    return (
        f"index {manifest.model_tag}: {manifest.vector_count:,} vectors in "
        f"{held_mb:,.0f} MB of segments, over {SEGMENT_SHARE:.0%} of the search function's "
        f"{search_memory_mb:,} MB (PIXSEARCH_SEARCH_MEMORY_MB): give search more memory "
        "(SearchMemorySize in infra/template.yaml; Lambda allows 10,240 MB, about 10M "
        "vectors of 512-d) or use the lancedb vector store"
    )
