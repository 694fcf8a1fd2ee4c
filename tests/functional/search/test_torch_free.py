"""On the ONNX runtime the search API and the embed stage never import torch or open_clip.

Each check runs in a fresh interpreter (as a Lambda container starts), imports
the function's entry point the way Lambda does, answers real queries or embeds
real images, then looks at ``sys.modules``.
"""

from __future__ import annotations

import textwrap

from pixsearch.config import Settings
from pixsearch.inference import ClipModel
from pixsearch.storage import ObjectStore
from tests.fixtures.fresh import run_fresh
from tests.fixtures.model import store_images

FORBIDDEN = textwrap.dedent(
    """
    banned = {"torch", "torchvision", "open_clip"}
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in banned)
    assert not heavy, heavy
    """
)


def _run(script: str) -> str:
    return run_fresh(textwrap.dedent(script) + FORBIDDEN + "print('torch-free')")


def test_search_function_answers_without_torch(
    tiny_onnx_model: ClipModel, settings: Settings, store: ObjectStore
) -> None:
    (image,) = store_images(store, 1)
    output = _run(
        f"""
        import sys
        sys.path.insert(0, "functions/search")
        import app
        from fastapi.testclient import TestClient

        client = TestClient(app.app)
        for body in ({{"query_text": "a red car"}}, {{"image_key": {image.key!r}}}):
            reply = client.post("/search", json=body)
            assert reply.status_code in (200, 503), reply.text  # 503: no index yet
        from pixsearch.search.service import SearchService
        from pixsearch.search.requests import build_request
        service = SearchService()
        request = build_request(service.settings, k=1, min_score=None, text="a red car")
        assert service.embed(request).shape == ({tiny_onnx_model.dim},)
        assert service.model().runtime == "onnx"
        """
    )
    assert "torch-free" in output


def test_embed_function_embeds_without_torch(
    tiny_onnx_model: ClipModel, settings: Settings, store: ObjectStore
) -> None:
    images = store_images(store, 3)
    keys = [image.key for image in images]
    output = _run(
        f"""
        import sys
        sys.path.insert(0, "functions/embed")
        import app
        from pixsearch.config import get_settings
        from pixsearch.embed.batch import embed_events
        from pixsearch.events import ObjectEvent
        from pixsearch.inference import load_model
        from pixsearch.storage import ObjectStore

        settings = get_settings()
        events = [
            ObjectEvent(str(n), settings.bucket, key, "ObjectCreated:Put", 1, "etag")
            for n, key in enumerate({keys!r})
        ]
        model = load_model(settings)
        result = embed_events(events, ObjectStore(settings.bucket), model, settings)
        assert result.embedded == 3 and not result.failures, result
        assert model.runtime == "onnx"
        """
    )
    assert "torch-free" in output
