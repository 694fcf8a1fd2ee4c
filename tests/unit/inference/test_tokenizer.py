"""The torch-free tokenizer gives exactly open_clip's token ids."""

from __future__ import annotations

import numpy as np
import pytest
from open_clip.tokenizer import SimpleTokenizer, default_bpe

from pixsearch.inference import probes
from pixsearch.inference.tokenizer import ClipTokenizer

MORE_TEXTS = (
    "A photo of a DOG running on the beach at sunset",
    "\t tabs\nand\nnewlines  ",
    "numbers 1234567890 and 3.14159",
    "mixed: 日本語 English Ελληνικά العربية",
    "under_scores and-hyphens / slashes \\ back",
    "It's a 'quoted' \"string\"",
    "ÀÉÎÕÜ çñß",
    "!!!???...,,,;;;",
)


@pytest.mark.parametrize("context_length", [77, 32, 8])
@pytest.mark.parametrize("clean", ["lower", "whitespace", "canonicalize"])
def test_token_ids_identical_to_open_clip(context_length: int, clean: str) -> None:
    texts = [*probes.TEXTS, *MORE_TEXTS]
    ours = ClipTokenizer(default_bpe(), context_length, clean)(texts)
    theirs = SimpleTokenizer(context_length=context_length, clean=clean)(texts).numpy()
    assert ours.dtype == np.int64 and ours.shape == (len(texts), context_length)
    np.testing.assert_array_equal(ours, theirs)


def test_truncated_text_ends_with_end_of_text() -> None:
    tokenizer = ClipTokenizer(default_bpe(), 8)
    tokens = tokenizer(["one two three four five six seven eight nine ten"])[0]
    assert tokens[0] == tokenizer.sot and tokens[-1] == tokenizer.eot
