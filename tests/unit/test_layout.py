"""The bucket key layout."""

from __future__ import annotations

import pytest

from pixsearch import layout


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("urls/list.txt", "list.txt"),
        ("urls/team/may.csv.gz", "team/may.csv.gz"),
        ("urls/v1.2/batch.jsonl", "v1.2/batch.jsonl"),
        ("urls/noext", "noext"),
    ],
)
def test_list_name(key: str, name: str):
    assert layout.list_name(key) == name


def test_lists_differing_only_in_format_keep_their_parts_maps_and_summaries_apart():
    names = [layout.list_name(f"urls/a.{ext}") for ext in ("txt", "csv", "txt.gz")]
    for keys in (
        [layout.part_key(name, 0) for name in names],
        [layout.url_map_key(name, 0) for name in names],
        [layout.summary_key(name) for name in names],
    ):
        assert len(set(keys)) == 3
    prefixes = [layout.url_map_prefix(name) for name in names]
    assert not any(
        other.startswith(prefix) for prefix in prefixes for other in prefixes if other != prefix
    )
    assert layout.parse_url_map_key(layout.url_map_key(names[2], 4)) == ("a.txt.gz", 4)


def test_model_tag_is_key_safe_and_short():
    assert layout.model_tag("ViT-B-32", "laion2b_s34b_b79k") == "ViT-B-32__laion2b_s34b_b79k"
    assert layout.model_tag("org/custom:v2", "") == "org-custom-v2__none"
    tag = layout.model_tag("ViT-B-32", "s3://b/weights/open clip.pt")
    assert tag.startswith("ViT-B-32__open-clip.pt-") and len(tag) < 64
    assert layout.model_tag("ViT-B-32", "s3://b/weights/open clip.pt") == tag


def test_checkpoints_with_one_file_name_in_two_folders_get_two_tags(tmp_path, monkeypatch):
    first, second = "run1/model.pt", "run2/model.pt"
    assert layout.model_tag("ViT-B-32", first) != layout.model_tag("ViT-B-32", second)
    assert layout.model_tag("ViT-B-32", "s3://b/run1/model.pt") != layout.model_tag(
        "ViT-B-32", "s3://b/run2/model.pt"
    )
    monkeypatch.chdir(tmp_path)
    assert layout.model_tag("ViT-B-32", first) == layout.model_tag(
        "ViT-B-32", str(tmp_path / first)
    )


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
