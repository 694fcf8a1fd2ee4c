"""The bucket key layout."""

from __future__ import annotations

import pytest

from pixsearch import layout


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("urls/list.txt", "list"),
        ("urls/team/may.csv.gz", "team/may"),
        ("urls/v1.2/batch.jsonl", "v1.2/batch"),
        ("urls/noext", "noext"),
        ("urls/dir.v1/noext", "dir.v1/noext"),
    ],
)
def test_list_name(key: str, name: str):
    assert layout.list_name(key) == name


def test_model_tag_is_key_safe_and_short_for_paths():
    assert layout.model_tag("ViT-B-32", "laion2b_s34b_b79k") == "ViT-B-32__laion2b_s34b_b79k"
    assert layout.model_tag("ViT-B-32", "s3://b/weights/open clip.pt") == "ViT-B-32__open-clip.pt"
    assert layout.model_tag("org/custom:v2", "") == "org-custom-v2__none"


def test_image_keys_are_content_addressed():
    sha = "ab" + "0" * 62
    assert layout.image_key(sha, ".JPG") == f"images/ab/{sha}.jpg"


def test_shard_keys_round_trip():
    key = layout.shard_key("tag", "0123abcd")
    assert key == "embeddings/tag/0123abcd.npy"
    assert layout.shard_ids_key("tag", "0123abcd") == "embeddings/tag/0123abcd.ids.json"
    assert layout.parse_shard_key(key) == ("tag", "0123abcd")
    with pytest.raises(ValueError, match="not an embedding shard key"):
        layout.parse_shard_key("embeddings/tag/0123abcd.ids.json")


def test_every_stage_key_lives_under_its_prefix():
    assert layout.url_map_key("team/may", 3) == "maps/team/may/00003.jsonl"
    assert layout.summary_key("team/may").startswith(layout.url_map_prefix("team/may"))
    assert layout.segment_key("tag", "s1").startswith(layout.index_prefix("tag"))
    assert layout.manifest_key("tag") == "index/tag/MANIFEST.json"
