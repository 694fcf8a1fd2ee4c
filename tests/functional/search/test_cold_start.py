"""The local search API's cold start, in a fresh interpreter as a container starts it.

Its text encoder starts loading before the search service, FAISS and the web
framework are imported (their imports then overlap the session build), and
answering the first query needs neither torch nor pyarrow's dataset layer (whose
first use cost a cold start ~0.25-0.5 s to read one row table).
"""

from __future__ import annotations

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.index import manifest as manifests
from pixsearch.index import segment as segments
from pixsearch.inference import ClipModel
from pixsearch.storage import ObjectStore
from tests.fixtures.fresh import run_fresh

TEXTS = [f"a photo of thing number {n}" for n in range(12)]


def _publish(store: ObjectStore, settings: Settings, model: ClipModel) -> list[str]:
    keys = [layout.image_key(f"{n:064x}", "jpg") for n in range(len(TEXTS))]
    rows = segments.Rows.of(
        keys,
        [f"https://img.example/{n}.jpg" for n in range(len(keys))],
        [64] * len(keys),
        [48] * len(keys),
    )
    built = segments.build_flat(model.encode_texts(TEXTS), rows)
    entry = segments.save(store, settings.model_tag, built)
    manifest = manifests.Manifest(
        model_tag=settings.model_tag, dim=model.dim, version=1, segments=(entry,)
    )
    manifests.publish(store, manifest, None)
    return keys


def test_entry_point_warms_up_before_importing_flask_and_answers_without_slow_imports(
    tiny_onnx_model: ClipModel, settings: Settings, store: ObjectStore
) -> None:
    keys = _publish(store, settings, tiny_onnx_model)
    script = f"""
        import runpy, sys

        def loaded(*names):
            return sorted(m for m in sys.modules if m in names or m.split(".")[0] in names)

        entry = runpy.run_path("functions/search/local.py")  # its module body, not main()
        late = ("flask", "werkzeug", "waitress", "pixsearch.search.service", "faiss")
        assert not loaded(*late), loaded(*late)
        from pixsearch.inference import preload

        preload(entry["get_settings"](), "text").join()
        from pixsearch.search.service import SearchService

        service = SearchService()
        from pixsearch.storage import client

        assert client.cache_info().currsize == 0, "the S3 client is the warm-up's to make"
        service.warm()
        from pixsearch.search.requests import build_request

        request = build_request(service.settings, k=3, min_score=None, text={TEXTS[5]!r})
        assert service.search(request).results[0].key == {keys[5]!r}
        slow = loaded("torch", "torchvision", "open_clip", "pyarrow.dataset")
        assert not slow, slow
        service.model().load_towers("image")  # the first answer started it: let it finish
        print("cold start ok")
        """
    assert "cold start ok" in run_fresh(script)
