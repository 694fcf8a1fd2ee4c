"""The ONNX runtime: the exported graphs in onnxruntime, with torch-free tokenizer and transform.

Imports neither torch nor open_clip. Threads come from
``PIXSEARCH_TORCH_THREADS`` (one setting for whichever runtime runs the model).
Each encoder's session is built on its first use (or by :meth:`OnnxClip.load_towers`),
so a search service answers its first text query without reading the image graph
and the embed stage never reads the text graph.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime
from PIL import Image

from pixsearch.inference.exported import ExportedModel, choose_precision
from pixsearch.inference.model import TOWERS, ClipModel, ModelUnavailable, unit_float32
from pixsearch.inference.tokenizer import ClipTokenizer

log = logging.getLogger(__name__)

OPTIMIZATION_LEVELS = {
    "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(
    threads: int, optimization: str = "all", *, spin_wait: bool = True
) -> onnxruntime.SessionOptions:
    """``spin_wait``: whether idle intra-op threads busy-wait for the next operator
    (onnxruntime's default). That buys a little latency on cores nobody else needs
    and costs CPU that other work on the same cores could have used."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    options.log_severity_level = 3
    if not spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxClip(ClipModel):
    """Image and text encoder sessions over one export, each built on first use."""

    runtime = "onnx"

    def __init__(
        self,
        exported: ExportedModel,
        *,
        threads: int,
        precision: str = "auto",
        optimization: str = "all",
    ) -> None:
        manifest = exported.manifest
        if precision == "auto":
            precision, reason = choose_precision(manifest.graphs, manifest.quality)
            log.info("model %s runs its %s graphs: %s", manifest.model_tag, precision, reason)
        graphs = manifest.graphs.get(precision)
        if graphs is None:
            raise ModelUnavailable(
                f"the export in {exported.directory} has no {precision} graphs "
                f"(it has {sorted(manifest.graphs)}); set PIXSEARCH_ONNX_PRECISION or export "
                f"with `pixsearch model export --force{' --quantize int8' * (precision == 'int8')}`"
            )
        self.name, self.pretrained, self.tag = (
            manifest.model,
            manifest.pretrained,
            manifest.model_tag,
        )
        self.dim = manifest.dim
        self.precision = precision
        self.preprocessing = manifest.preprocessing
        height, width = manifest.preprocessing.image_size
        self.input_size = (width, height)
        self._tokenizer_spec = manifest.tokenizer
        self._tokenizer_path = exported.path(manifest.tokenizer.merges)
        self._tokenizer: ClipTokenizer | None = None
        self._tokenizer_lock = threading.Lock()
        self._graphs = {tower: exported.path(graphs[tower]) for tower in TOWERS}
        # The image encoder's threads do not spin: the embed stage shares its cores
        # with downloads, object store calls and decoding (see README, design notes).
        self._options = {
            tower: session_options(threads, optimization, spin_wait=tower == "text")
            for tower in TOWERS
        }
        self._sessions: dict[str, onnxruntime.InferenceSession] = {}
        self._session_locks = {tower: threading.Lock() for tower in TOWERS}

    def load_towers(self, *towers: str) -> None:
        for tower in towers or TOWERS:
            if tower == "text":
                # onnxruntime builds a session without holding the GIL: the tokenizer
                # (pure Python) is built meanwhile rather than after.
                with ThreadPoolExecutor(1, thread_name_prefix="onnx-session") as pool:
                    building = pool.submit(self._session, tower)
                    self.tokenizer()
                    building.result()
            else:
                self._session(tower)

    def tokenizer(self) -> ClipTokenizer:
        """The text tokenizer, built on first use (reading its ~49k merges takes 0.1-0.3 s)."""
        with self._tokenizer_lock:
            if self._tokenizer is None:
                spec = self._tokenizer_spec
                self._tokenizer = ClipTokenizer(
                    self._tokenizer_path, spec.context_length, spec.clean
                )
            return self._tokenizer

    def _session(self, tower: str) -> onnxruntime.InferenceSession:
        session = self._sessions.get(tower)
        if session is not None:
            return session
        with self._session_locks[tower]:
            if tower not in self._sessions:
                try:
                    self._sessions[tower] = onnxruntime.InferenceSession(
                        str(self._graphs[tower]),
                        self._options[tower],
                        providers=["CPUExecutionProvider"],
                    )
                except Exception as error:  # onnxruntime raises its own, unexported classes
                    raise ModelUnavailable(
                        f"onnxruntime cannot load {self._graphs[tower]} ({error}); "
                        "run `pixsearch model export --force` again"
                    ) from error
            return self._sessions[tower]

    def _run(self, tower: str, batch: np.ndarray) -> np.ndarray:
        session = self._session(tower)
        return unit_float32(session.run(None, {session.get_inputs()[0].name: batch})[0])

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.preprocessing(image)

    def encode_pixels(self, batch: np.ndarray) -> np.ndarray:
        return self._run("image", np.ascontiguousarray(batch, dtype=np.float32))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._run("text", self.tokenizer()(texts))
