"""Caption search for the FAISS engine: a small in-memory BM25 inverted index.

Built from the captions of the rows a search process has loaded anyway (the
segments' row tables), once per index version, on the first hybrid query. The
LanceDB engine uses LanceDB's own full-text index instead.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

_WORD = re.compile(r"\w+", re.UNICODE)
K1, B = 1.2, 0.75  # the usual BM25 constants


def tokens(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.casefold()) if len(word) > 1]


class KeywordIndex:
    """BM25 over ``texts``; documents are their positions in ``texts``."""

    def __init__(self, texts: Sequence[str]) -> None:
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._lengths = []
        for document, text in enumerate(texts):
            counts = Counter(tokens(text))
            self._lengths.append(sum(counts.values()))
            for word, count in counts.items():
                self._postings[word].append((document, count))
        self._average = sum(self._lengths) / len(self._lengths) if self._lengths else 0.0

    def __len__(self) -> int:
        return len(self._lengths)

    def search(
        self, text: str, limit: int, allowed: Callable[[int], bool] | None = None
    ) -> list[tuple[int, float]]:
        """The best ``limit`` documents for ``text`` (among ``allowed`` ones), best first."""
        scores: dict[int, float] = defaultdict(float)
        total = len(self._lengths)
        for word in set(tokens(text)):
            postings = self._postings.get(word, [])
            if not postings:
                continue
            idf = math.log(1 + (total - len(postings) + 0.5) / (len(postings) + 0.5))
            for document, count in postings:
                norm = K1 * (1 - B + B * self._lengths[document] / self._average)
                scores[document] += idf * count * (K1 + 1) / (count + norm)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        if allowed is not None:
            ranked = [item for item in ranked if allowed(item[0])]
        return ranked[:limit]
