"""Hybrid ranking: reciprocal-rank fusion of the CLIP ranking and the caption ranking."""

from __future__ import annotations

from collections.abc import Sequence

from pixsearch.vectorstore.port import Hit

RRF_K = 60  # the constant of Cormack et al.; it damps the weight of the very first ranks


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[str]:
    """Keys ordered by the sum of ``1 / (k + rank)`` over the rankings they appear in.

    Ties keep the order of the first ranking, so with an empty caption ranking the
    result is the CLIP ranking itself.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    first_seen = {key: position for position, key in enumerate(scores)}
    return sorted(scores, key=lambda key: (-scores[key], first_seen[key]))


def fuse(clip: Sequence[Hit], captions: Sequence[Hit], k: int) -> list[Hit]:
    """The top ``k`` of both rankings fused; each hit keeps its CLIP (cosine) score."""
    by_key = {hit.key: hit for hit in captions} | {hit.key: hit for hit in clip}
    order = reciprocal_rank_fusion([[hit.key for hit in clip], [hit.key for hit in captions]])
    return [by_key[key] for key in order[:k]]


def candidate_pool(k: int) -> int:
    """How many candidates each ranking contributes to a fused top ``k``."""
    return max(4 * k, 40)
