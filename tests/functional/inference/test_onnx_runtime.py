"""The exported tiny model on onnxruntime: same tag, same vectors as torch, any batch size."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from pixsearch.config import Settings
from pixsearch.inference import TINY_MODEL, ClipModel, ModelUnavailable, create_model, probes
from pixsearch.inference.exported import MANIFEST, sha256_of
from pixsearch.inference.torch_runtime import create_model as create_torch_model
from pixsearch.storage import ObjectStore, client

TAG = "pixsearch-tiny__none"
TEXTS = ["a red square", "a photo of a dog", "東京の夜景", "", "x " * 100]


@pytest.fixture(scope="module")
def torch_model() -> ClipModel:
    return create_torch_model(Settings(model=TINY_MODEL, pretrained="", inference="torch"))


def _onnx(tiny_export: Path, **changes: object) -> ClipModel:
    settings = Settings(
        model=TINY_MODEL, pretrained="", inference="onnx", onnx_dir=str(tiny_export), **changes
    )
    return create_model(settings)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


def test_onnx_and_torch_agree_per_vector(tiny_export: Path, torch_model: ClipModel) -> None:
    onnx = _onnx(tiny_export, onnx_precision="fp32")
    assert (onnx.runtime, torch_model.runtime) == ("onnx", "torch")
    assert onnx.tag == torch_model.tag == TAG and onnx.dim == torch_model.dim
    images = probes.images(seed=7)
    image_vectors = onnx.encode_images(images)
    text_vectors = onnx.encode_texts(TEXTS)
    assert image_vectors.dtype == text_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1.0, rtol=1e-5)
    assert _min_cosine(image_vectors, torch_model.encode_images(images)) >= 0.999
    assert _min_cosine(text_vectors, torch_model.encode_texts(TEXTS)) >= 0.999


def test_batch_axis_is_dynamic(tiny_export: Path) -> None:
    images = probes.images(seed=3)
    fp32, int8 = (
        _onnx(tiny_export, onnx_precision="fp32"),
        _onnx(tiny_export, onnx_precision="int8"),
    )
    fp32_together, int8_together = fp32.encode_images(images), int8.encode_images(images)
    for size in (1, 2, 5):
        np.testing.assert_allclose(
            fp32.encode_images(images[:size]), fp32_together[:size], atol=1e-5
        )
        # dynamic quantization scales activations per batch: a vector moves a little with
        # the batch it is in, never past the int8 bar
        assert _min_cosine(int8.encode_images(images[:size]), int8_together[:size]) >= 0.99
    for onnx in (fp32, int8):
        assert onnx.encode_texts(["one"]).shape == (1, onnx.dim)
        assert onnx.encode_images([]).shape == (0, onnx.dim)


def test_int8_graphs_stay_close_to_fp32(tiny_export: Path) -> None:
    fp32, int8 = (
        _onnx(tiny_export, onnx_precision="fp32"),
        _onnx(tiny_export, onnx_precision="int8"),
    )
    images = probes.images(seed=5)
    assert int8.tag == fp32.tag
    assert _min_cosine(int8.encode_images(images), fp32.encode_images(images)) >= 0.99
    assert _min_cosine(int8.encode_texts(TEXTS), fp32.encode_texts(TEXTS)) >= 0.99


def test_manifest_names_source_model_constants_and_checksums(tiny_export: Path) -> None:
    directory = tiny_export / TAG
    manifest = json.loads((directory / MANIFEST).read_text())
    assert (manifest["model"], manifest["pretrained"], manifest["model_tag"]) == (
        TINY_MODEL,
        "",
        TAG,
    )
    assert manifest["preprocessing"]["image_size"] == [32, 32]
    assert manifest["tokenizer"]["context_length"] == 32
    assert set(manifest["graphs"]) == {"fp32", "int8"}
    assert manifest["quality"]["tokens_identical"] is True
    for precision, bar in (("fp32", 0.999), ("int8", 0.99)):
        for tower in ("image", "text"):
            measured = manifest["quality"][precision]
            assert measured[f"{tower}_cosine_median"] >= measured[f"{tower}_cosine_min"] >= bar
    for name, info in manifest["files"].items():
        assert sha256_of(directory / name) == info["sha256"]


def _copy_with_manifest(tiny_export: Path, copy: Path, **int8_quality: float) -> Path:
    shutil.copytree(tiny_export, copy)
    path = copy / TAG / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["quality"]["int8"].update(int8_quality)
    path.write_text(json.dumps(manifest))
    return copy


def test_auto_precision_runs_int8_only_where_the_export_measured_it_close(
    tiny_export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pixsearch.inference.onnx_runtime"):
        assert _onnx(tiny_export).precision == "int8"
    assert "runs its int8 graphs" in caplog.text and ">= 0.99" in caplog.text
    caplog.clear()
    far = _copy_with_manifest(tiny_export, tmp_path / "far", text_cosine_min=0.95)
    with caplog.at_level(logging.INFO, logger="pixsearch.inference.onnx_runtime"):
        assert _onnx(far).precision == "fp32"
    assert "runs its fp32 graphs" in caplog.text and "0.95000 < 0.99" in caplog.text
    assert _onnx(far, onnx_precision="int8").precision == "int8"  # asked for: runs anyway


def test_each_encoder_loads_on_first_use(tiny_export: Path, tmp_path: Path) -> None:
    broken = _copy_with_manifest(tiny_export, tmp_path / "broken")
    image_graph = broken / TAG / "image.int8.onnx"
    image_graph.write_bytes(bytes(image_graph.stat().st_size))  # same size: passes the start check
    onnx = _onnx(broken)
    assert onnx.encode_texts(TEXTS).shape == (len(TEXTS), onnx.dim)  # no image graph needed
    with pytest.raises(ModelUnavailable, match="export --force"):
        onnx.encode_images(probes.images())


def test_only_the_text_encoders_threads_spin_while_waiting(tiny_export: Path) -> None:
    onnx = _onnx(tiny_export)
    onnx.load_towers()

    def spinning(tower: str) -> str:
        options = onnx._session(tower).get_session_options()
        try:
            return options.get_session_config_entry("session.intra_op.allow_spinning")
        except Exception:  # onnxruntime: no entry means its default, spinning
            return "1"

    assert spinning("image") == "0"  # the embed stage shares its cores
    assert spinning("text") == "1"


def test_a_damaged_export_is_an_error_not_a_silent_fallback(tiny_export: Path, tmp_path: Path):
    copy = tmp_path / "damaged"
    shutil.copytree(tiny_export, copy)
    (copy / TAG / "image.onnx").write_bytes(b"cut")
    with pytest.raises(ModelUnavailable, match="export --force"):
        create_model(Settings(model=TINY_MODEL, pretrained="", onnx_dir=str(copy)))


def test_onnx_without_export_names_the_command(tmp_path: Path) -> None:
    settings = Settings(model=TINY_MODEL, pretrained="", inference="onnx", onnx_dir=str(tmp_path))
    with pytest.raises(ModelUnavailable, match="pixsearch model export"):
        create_model(settings)


def test_auto_uses_onnx_when_exported_else_torch_and_says_so(
    tiny_export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert (
        create_model(Settings(model=TINY_MODEL, pretrained="", onnx_dir=str(tiny_export))).runtime
        == "onnx"
    )
    with caplog.at_level(logging.INFO, logger="pixsearch.inference.loader"):
        model = create_model(Settings(model=TINY_MODEL, pretrained="", onnx_dir=str(tmp_path)))
    assert model.runtime == "torch"
    assert "running it on torch" in caplog.text and "pixsearch model export" in caplog.text


def test_export_to_s3_and_load_from_there(
    tiny_export: Path,
    settings: Settings,
    store: ObjectStore,
    torch_model: ClipModel,
    tmp_path: Path,
) -> None:
    from pixsearch.inference.export import export

    prefix = f"s3://{settings.bucket}/models"
    source = Settings(model=TINY_MODEL, pretrained="", inference="torch")
    result = export(source, prefix)
    assert result.destination == f"{prefix}/{TAG}" and not result.skipped
    assert export(source, prefix).skipped  # idempotent: an export that exists is kept
    listed = client("s3").list_objects_v2(Bucket=settings.bucket, Prefix="models/")
    assert {item["Key"].rsplit("/", 1)[1] for item in listed["Contents"]} >= {
        MANIFEST,
        "image.onnx",
        "text.onnx",
        "image.int8.onnx",
        "text.int8.onnx",
    }
    runtime = Settings(
        model=TINY_MODEL,
        pretrained="",
        inference="onnx",
        onnx_dir=prefix,
        onnx_precision="fp32",
        model_cache_dir=tmp_path / "cache",
    )
    onnx = create_model(runtime)
    assert create_model(runtime).tag == TAG  # second load: from the checked local copy
    assert _min_cosine(onnx.encode_texts(TEXTS), torch_model.encode_texts(TEXTS)) >= 0.999


def test_warming_the_text_tower_gives_the_same_vectors_as_loading_on_first_use(
    tiny_export: Path,
) -> None:
    warmed = _onnx(tiny_export)
    warmed.load_towers("text")  # session and tokenizer built side by side
    np.testing.assert_array_equal(
        warmed.encode_texts(TEXTS), _onnx(tiny_export).encode_texts(TEXTS)
    )


def test_warming_a_damaged_text_tower_names_the_command(tiny_export: Path, tmp_path: Path) -> None:
    broken = _copy_with_manifest(tiny_export, tmp_path / "broken")
    text_graph = broken / TAG / "text.int8.onnx"
    text_graph.write_bytes(bytes(text_graph.stat().st_size))
    with pytest.raises(ModelUnavailable, match="export --force"):
        _onnx(broken).load_towers("text")
