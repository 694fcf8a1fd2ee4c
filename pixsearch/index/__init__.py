"""The index stage: embedding shards -> a log-structured, versioned FAISS index in the bucket.

The surface other code uses (and a vector-store engine wraps):

- write: :func:`pixsearch.index.update.apply` (fold shards and removals in, one
  transaction) and :func:`pixsearch.index.rebuild.rebuild` (from every shard);
- read: :func:`pixsearch.index.reader.load_snapshot` (``previous=`` for an
  incremental reload), :class:`~pixsearch.index.reader.IndexSnapshot` ``.search``,
  and :func:`~pixsearch.index.reader.manifest_etag` (has anything changed?);
- maintain: :func:`pixsearch.index.retention.collect` / ``plan``;
- limits: :class:`pixsearch.index.compaction.Limits` (``from_settings``).

Everything else (segments, the IVF template, tiers, folded shard ids) is internal.
"""
