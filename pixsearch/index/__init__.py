"""The index stage: embedding shards -> a log-structured, versioned FAISS index in the bucket."""
