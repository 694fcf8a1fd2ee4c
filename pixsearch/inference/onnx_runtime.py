"""The ONNX runtime: the exported graphs in onnxruntime, with torch-free tokenizer and transform.

Imports neither torch nor open_clip. Threads come from
``PIXSEARCH_TORCH_THREADS`` (one setting for whichever runtime runs the model).
"""

from __future__ import annotations

import numpy as np
import onnxruntime
from PIL import Image

from pixsearch.inference.exported import ExportedModel
from pixsearch.inference.model import ClipModel, ModelUnavailable, unit_float32
from pixsearch.inference.tokenizer import ClipTokenizer

OPTIMIZATION_LEVELS = {
    "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(threads: int, optimization: str = "all") -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    options.log_severity_level = 3
    return options


class OnnxClip(ClipModel):
    """Image and text encoder sessions over one export."""

    runtime = "onnx"

    def __init__(
        self,
        exported: ExportedModel,
        *,
        threads: int,
        precision: str = "fp32",
        optimization: str = "all",
    ) -> None:
        manifest = exported.manifest
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
        self.tokenizer = ClipTokenizer(
            exported.path(manifest.tokenizer.merges),
            manifest.tokenizer.context_length,
            manifest.tokenizer.clean,
        )
        options = session_options(threads, optimization)
        providers = ["CPUExecutionProvider"]
        self.image_session = onnxruntime.InferenceSession(
            str(exported.path(graphs["image"])), options, providers=providers
        )
        self.text_session = onnxruntime.InferenceSession(
            str(exported.path(graphs["text"])), options, providers=providers
        )
        self._image_input = self.image_session.get_inputs()[0].name
        self._text_input = self.text_session.get_inputs()[0].name

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.preprocessing(image)

    def encode_pixels(self, batch: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(batch, dtype=np.float32)
        return unit_float32(self.image_session.run(None, {self._image_input: pixels})[0])

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts)
        return unit_float32(self.text_session.run(None, {self._text_input: tokens})[0])
