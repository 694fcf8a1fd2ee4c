"""Which runtime runs the model (``PIXSEARCH_INFERENCE``), loaded once per process.

``auto`` (default) uses ONNX where an export of the configured model exists
and torch otherwise, saying so in the log; ``onnx`` requires an export;
``torch`` always runs open_clip eagerly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from pixsearch.config import Settings
from pixsearch.inference import exported
from pixsearch.inference.model import ClipModel, ModelUnavailable

log = logging.getLogger(__name__)

_loaded: dict[tuple[object, ...], ClipModel] = {}
_load_lock = threading.Lock()


def load_model(settings: Settings) -> ClipModel:
    """The model ``settings`` name on the runtime they choose, shared by the whole process."""
    cache_key: tuple[object, ...] = (settings.inference, settings.model, settings.pretrained)
    if settings.inference == "torch":
        cache_key += (settings.device,)
    else:
        cache_key += (exported.location(settings), settings.onnx_precision)
    with _load_lock:
        if cache_key not in _loaded:
            _loaded[cache_key] = create_model(settings)
        return _loaded[cache_key]


def preload(settings: Settings, *towers: str) -> threading.Thread:
    """Start loading the model and its ``towers`` in a daemon thread (a cold start's first
    step, before the caller's own imports); :func:`load_model` then returns that instance.

    A failure is left to the caller's own :func:`load_model` or ``load_towers``, which
    raise it again with its message.
    """

    def load() -> None:
        started = time.perf_counter()
        with contextlib.suppress(ModelUnavailable):
            model = load_model(settings)
            loaded = time.perf_counter()
            model.load_towers(*towers)
            log.info(
                "cold start: model %s preloaded on %s in %.0f ms, its %s encoder in %.0f ms",
                model.tag,
                model.runtime,
                (loaded - started) * 1000,
                "+".join(towers) or "image+text",
                (time.perf_counter() - loaded) * 1000,
            )

    thread = threading.Thread(target=load, name="model-preload", daemon=True)
    thread.start()
    return thread


def create_model(settings: Settings) -> ClipModel:
    """A new model instance (uncached) on the runtime ``settings`` choose."""
    if settings.inference in ("auto", "onnx"):
        export = exported.find(settings)
        if export is not None:
            from pixsearch.inference.onnx_runtime import OnnxClip

            log.info("model %s runs on onnxruntime from %s", settings.model_tag, export.directory)
            return OnnxClip(
                export, threads=settings.torch_threads, precision=settings.onnx_precision
            )
        where = exported.model_location(exported.location(settings), settings.model_tag)
        if settings.inference == "onnx":
            raise ModelUnavailable(
                f"PIXSEARCH_INFERENCE=onnx but there is no exported model at {where}; "
                "run `pixsearch model export` (or set PIXSEARCH_ONNX_DIR to where it is, "
                "or PIXSEARCH_INFERENCE=torch)"
            )
        log.info(
            "no exported ONNX model of %s at %s (`pixsearch model export` makes one): "
            "running it on torch",
            settings.model_tag,
            where,
        )
    try:
        from pixsearch.inference.torch_runtime import create_model as create_torch_model
    except ModuleNotFoundError as missing:  # a lean image: onnxruntime only
        raise ModelUnavailable(
            f"the torch runtime needs {missing.name}, which is not installed "
            "(pip install 'pixsearch[export]'); or export the model (`pixsearch model export`) "
            "and set PIXSEARCH_ONNX_DIR to where the export is"
        ) from None
    return create_torch_model(settings)
