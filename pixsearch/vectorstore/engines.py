"""Choosing the engine: ``PIXSEARCH_VECTOR_STORE=faiss|lancedb`` (default ``faiss``)."""

from __future__ import annotations

from pixsearch.config import Settings
from pixsearch.storage import ObjectStore
from pixsearch.vectorstore.port import VectorStore

ENGINES = ("faiss", "lancedb")


def open_store(
    settings: Settings, store: ObjectStore, model_tag: str, engine: str | None = None
) -> VectorStore:
    """The vector store of ``model_tag`` in ``engine`` (the configured one by default)."""
    name = engine or settings.vector_store
    if name == "faiss":
        from pixsearch.vectorstore.faiss_store import FaissStore

        return FaissStore(settings, store, model_tag)
    if name == "lancedb":
        from pixsearch.vectorstore.lance_store import LanceStore

        return LanceStore(settings, store, model_tag)
    raise ValueError(f"unknown vector store {name!r}; PIXSEARCH_VECTOR_STORE is one of {ENGINES}")
