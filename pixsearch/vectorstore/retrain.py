"""``pixsearch index retrain``: train the LanceDB table's vector index where no time limit
applies, once the table has outgrown what an index run may train (see
:mod:`pixsearch.vectorstore.lance_indexes`)."""

from __future__ import annotations

import sys

from pixsearch.config import Settings
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.lance_store import LanceStore


def command(model_tag: str | None, settings: Settings) -> int:
    if settings.vector_store != "lancedb":
        print(
            "pixsearch index retrain: the faiss engine trains its segments in its index runs; "
            "retrain applies to PIXSEARCH_VECTOR_STORE=lancedb",
            file=sys.stderr,
        )
        return 2
    tag = model_tag or settings.model_tag
    lance = LanceStore(settings, ObjectStore.from_settings(settings), tag)
    print(f"training the vector index of {lance.uri} on every row ...", flush=True)
    rows, took = lance.retrain()
    print(f"trained the vector index of {lance.uri} on {rows} rows in {took:.0f} s")
    return 0
