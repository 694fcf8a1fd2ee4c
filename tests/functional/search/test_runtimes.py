"""One model tag, two runtimes: an index embedded on one runtime is searched on the other."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pixsearch.config import Settings
from pixsearch.inference import ClipModel
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.search.errors import SearchError
from pixsearch.search.requests import build_request
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from tests.fixtures.model import StoredImage, store_images

# fp32 graphs give the source model's vectors (cosine >= 0.999); int8 ones within 0.99
BARS = {"fp32": 0.999, "int8": 0.99}


def _each_image_finds_itself(service: SearchService, images: list[StoredImage], bar: float):
    for image in images:
        response = service.search(
            build_request(service.settings, k=3, min_score=None, image_bytes=image.data)
        )
        assert response.results[0].key == image.key
        assert response.results[0].score >= bar


@pytest.mark.parametrize("precision", BARS)
def test_torch_index_onnx_queries(
    precision: str,
    tiny_model: ClipModel,
    tiny_export: Path,
    settings: Settings,
    store: ObjectStore,
    pipeline: Dispatcher,
) -> None:
    images = store_images(store, 6)
    pipeline.drain()
    onnx_settings = settings.model_copy(
        update={"inference": "onnx", "onnx_dir": str(tiny_export), "onnx_precision": precision}
    )
    service = SearchService(onnx_settings, store)
    assert service.model().runtime == "onnx" and service.model().tag == tiny_model.tag
    _each_image_finds_itself(service, images, BARS[precision])
    torch_text = SearchService(settings, store).search(
        build_request(settings, k=6, min_score=None, text="a blue circle")
    )
    onnx_text = service.search(build_request(settings, k=6, min_score=None, text="a blue circle"))
    assert {r.key for r in onnx_text.results} == {r.key for r in torch_text.results}
    torch_scores = {r.key: r.score for r in torch_text.results}
    np.testing.assert_allclose(
        [r.score for r in onnx_text.results],
        [torch_scores[r.key] for r in onnx_text.results],
        atol=1 - BARS[precision],
    )
    if precision == "fp32":
        assert [r.key for r in onnx_text.results] == [r.key for r in torch_text.results]


def test_onnx_index_torch_queries(
    tiny_onnx_model: ClipModel,
    settings: Settings,
    store: ObjectStore,
    pipeline: Dispatcher,
) -> None:
    assert settings.inference == "onnx"
    images = store_images(store, 6)
    pipeline.drain()
    service = SearchService(settings.model_copy(update={"inference": "torch"}), store)
    assert service.model().runtime == "torch" and service.model().tag == tiny_onnx_model.tag
    _each_image_finds_itself(service, images, BARS[tiny_onnx_model.precision])


def test_text_queries_need_no_image_encoder_and_a_broken_one_is_a_503(
    tiny_model: ClipModel,
    tiny_export: Path,
    settings: Settings,
    store: ObjectStore,
    pipeline: Dispatcher,
    tmp_path: Path,
) -> None:
    images = store_images(store, 3)
    pipeline.drain()
    broken = tmp_path / "broken"
    shutil.copytree(tiny_export, broken)
    for graph in (broken / tiny_model.tag).glob("image*.onnx"):
        graph.write_bytes(bytes(graph.stat().st_size))  # same size: the start check passes
    service = SearchService(
        settings.model_copy(update={"inference": "onnx", "onnx_dir": str(broken)}), store
    )
    service.warm()
    assert service.health().status == "ok"
    text = service.search(build_request(settings, k=3, min_score=None, text="a blue circle"))
    assert len(text.results) == 3
    with pytest.raises(SearchError) as caught:
        service.search(build_request(settings, k=1, min_score=None, image_bytes=images[0].data))
    assert (caught.value.status, caught.value.code) == (503, "model_unavailable")
    assert "pixsearch model export --force" in caught.value.message
