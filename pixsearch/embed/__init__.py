"""The embed stage: images in the bucket -> open_clip embeddings as ``.npy`` shards."""
