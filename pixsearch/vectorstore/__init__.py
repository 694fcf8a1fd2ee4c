"""The VectorStore port and its engines: ``faiss`` (segments + manifest) and ``lancedb``."""
