"""CLIP's byte-pair-encoding tokenizer without torch: the same token ids as open_clip's.

A re-implementation of ``open_clip.tokenizer.SimpleTokenizer`` (itself
OpenAI CLIP's) over the same merges file, returning numpy arrays; tests and
the exporter check it against open_clip on a set of texts. Text is cleaned as
open_clip's ``clean`` option says: ftfy, HTML unescaping, whitespace
squeezing, then ``lower`` (default), ``whitespace`` or ``canonicalize``.
"""

from __future__ import annotations

import gzip
import html
import string
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import ftfy
import numpy as np
import regex

CLEANERS = ("lower", "whitespace", "canonicalize")
_MERGES = 49152 - 256 - 2
_SPECIAL = ("<start_of_text>", "<end_of_text>")


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """The reversible byte -> printable character map CLIP's vocabulary is written in."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _clean(text: str, mode: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    if mode == "canonicalize":
        text = text.replace("_", " ").translate(str.maketrans("", "", string.punctuation))
        return " ".join(text.lower().split()).strip()
    text = " ".join(text.split()).strip()
    return text.lower() if mode == "lower" else text


class ClipTokenizer:
    """``tokenizer(texts)`` -> ``(n, context_length)`` int64 ids: SOT, BPE ids, EOT, zeros."""

    def __init__(self, merges_path: Path, context_length: int, clean: str = "lower") -> None:
        if clean not in CLEANERS:
            raise ValueError(f"unknown tokenizer clean mode {clean!r} (one of {CLEANERS})")
        with gzip.open(merges_path) as file:
            lines = file.read().decode("utf-8").split("\n", _MERGES + 1)[1 : _MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        symbols = list(_bytes_to_unicode().values())
        vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges), *_SPECIAL]
        self.encoder = {token: index for index, token in enumerate(vocab)}
        self.ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.sot, self.eot = self.encoder[_SPECIAL[0]], self.encoder[_SPECIAL[1]]
        self.context_length = context_length
        self.clean = clean
        self._cache: dict[str, list[str]] = {}
        self._pattern = regex.compile(
            "|".join(_SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        result = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot, *self.encode(text), self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            result[row, : len(ids)] = ids
        return result

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` (no SOT/EOT, no truncation)."""
        byte_map = _bytes_to_unicode()
        ids: list[int] = []
        for piece in self._pattern.findall(_clean(text, self.clean)):
            word = "".join(byte_map[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[token] for token in self._bpe(word))
        return ids

    def _bpe(self, token: str) -> list[str]:
        if token in _SPECIAL:
            return [token]
        if token in self._cache:
            return self._cache[token]
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(zip(word, word[1:], strict=False))
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word
