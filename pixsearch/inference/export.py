"""``pixsearch model export``: the configured open_clip model -> ONNX graphs + constants + manifest.

Needs torch and open_clip (the ``export`` dependency group); nothing that
runs an export imports this module. Each tower is exported with torch's
TorchScript-based exporter, then fused offline by onnxruntime's transformer
optimizer (LayerNorm + residual, bias + GELU): on ViT-B-32 that graph ran
1.3x the dynamo exporter's, which the optimizer finds no patterns in (see
bench/RESULTS.md). int8 graphs are quantized from the unfused graphs
(quantizing the fused ones was not consistently faster, see bench/RESULTS.md).

The graphs are checked before they are published: on
:mod:`pixsearch.inference.probes`, the torch-free tokenizer must give
open_clip's token ids, the numpy transform open_clip's pixels, and the fp32
graphs the eager model's vectors (cosine >= ``MIN_COSINE``). The int8 graphs'
min and median cosines to the eager vectors are recorded, not required: they
decide whether the runtime's ``auto`` precision uses them.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.tokenizer import SimpleTokenizer, default_bpe

from pixsearch.config import Settings
from pixsearch.inference import exported, probes
from pixsearch.inference.exported import ExportManifest, TokenizerSpec
from pixsearch.inference.preprocess import Preprocessing, UnsupportedPreprocessing
from pixsearch.inference.tokenizer import ClipTokenizer
from pixsearch.inference.torch_runtime import TorchClip, create_model

log = logging.getLogger(__name__)

OPSET = 17
MIN_COSINE = 0.999
GRAPH_FILES = {"fp32": ("image.onnx", "text.onnx"), "int8": ("image.int8.onnx", "text.int8.onnx")}


class ExportError(RuntimeError):
    """The model cannot be exported faithfully; the message says what differs."""


@dataclass(frozen=True)
class ExportResult:
    destination: str
    manifest: ExportManifest
    skipped: bool = False


class _Encoder(torch.nn.Module):
    """One tower of the model as a graph: ``encode_image`` or ``encode_text``, normalized."""

    def __init__(self, module: torch.nn.Module, tower: str) -> None:
        super().__init__()
        self.module = module
        self.encode = getattr(module, f"encode_{tower}")

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.encode(batch, normalize=True)


def export(
    settings: Settings,
    destination: str | None = None,
    *,
    quantize: str | None = "int8",
    force: bool = False,
) -> ExportResult:
    """Export the model ``settings`` name to ``destination`` (default: ``PIXSEARCH_ONNX_DIR``).

    ``quantize="int8"`` (default) adds int8 graphs and their measured closeness to the
    source model, which decides whether the runtime uses them by default; ``None`` skips them.
    """
    target = exported.model_location(destination or exported.location(settings), settings.model_tag)
    existing = None if force else exported.published_manifest(target)
    if existing is not None and (quantize is None or quantize in existing.graphs):
        return ExportResult(target, existing, skipped=True)
    model = create_model(settings)
    with tempfile.TemporaryDirectory(prefix="pixsearch-export-") as scratch:
        staged, unfused = Path(scratch) / settings.model_tag, Path(scratch) / "unfused"
        staged.mkdir()
        unfused.mkdir()
        manifest = _stage(model, staged, unfused, quantize)
        return ExportResult(exported.publish(staged, manifest, target), manifest)


def _stage(model: TorchClip, staged: Path, unfused: Path, quantize: str | None) -> ExportManifest:
    tokenizer_spec = _tokenizer_spec(model)
    shutil.copyfile(default_bpe(), staged / tokenizer_spec.merges)
    try:
        preprocessing = Preprocessing.from_open_clip(model.module.visual.preprocess_cfg)
    except UnsupportedPreprocessing as error:
        raise ExportError(f"{model.name}: {error}") from error
    tokenizer = ClipTokenizer(
        staged / tokenizer_spec.merges, tokenizer_spec.context_length, tokenizer_spec.clean
    )
    quality = _check_constants(model, preprocessing, tokenizer)
    image_file, text_file = GRAPH_FILES["fp32"]
    height, width = preprocessing.image_size
    log.info("exporting the %s image encoder", model.tag)
    _export_graph(
        _Encoder(model.module, "image"), torch.randn(2, 3, height, width), unfused / image_file
    )
    log.info("exporting the %s text encoder", model.tag)
    sample_tokens = torch.from_numpy(tokenizer(["a photo", "of a cat"]))
    _export_graph(_Encoder(model.module, "text"), sample_tokens, unfused / text_file)
    quality["fusions"] = {
        part: _fuse(unfused / name, staged / name)
        for part, name in (("image", image_file), ("text", text_file))
    }
    graphs = {"fp32": {"image": image_file, "text": text_file}}
    reference = _reference_vectors(model)
    quality["fp32"] = _cosines(staged, graphs["fp32"], preprocessing, tokenizer, reference)
    worst = min(quality["fp32"]["image_cosine_min"], quality["fp32"]["text_cosine_min"])
    if worst < MIN_COSINE:
        raise ExportError(
            f"the ONNX graphs of {model.tag} disagree with open_clip (cosine {worst:.5f} < "
            f"{MIN_COSINE}); nothing was published"
        )
    if quantize == "int8":
        graphs["int8"] = _quantize(unfused, staged, graphs["fp32"])
        quality["int8"] = _cosines(staged, graphs["int8"], preprocessing, tokenizer, reference)
    elif quantize is not None:
        raise ExportError(f"unknown quantization {quantize!r} (only int8)")
    return ExportManifest(
        model=model.name,
        pretrained=model.pretrained,
        model_tag=model.tag,
        dim=model.dim,
        preprocessing=preprocessing,
        tokenizer=tokenizer_spec,
        graphs=graphs,
        files={
            path.name: {"sha256": exported.sha256_of(path), "bytes": path.stat().st_size}
            for path in sorted(staged.iterdir())
        },
        exported_with={
            "torch": torch.__version__,
            "open_clip": open_clip.__version__,
            "onnxruntime": _onnxruntime().__version__,
            "opset": str(OPSET),
        },
        quality=quality,
    )


def _tokenizer_spec(model: TorchClip) -> TokenizerSpec:
    tokenizer = model.tokenizer
    if not isinstance(tokenizer, SimpleTokenizer) or tokenizer.reduction_fn is not None:
        raise ExportError(
            f"{model.name} uses a {type(tokenizer).__name__} tokenizer; only CLIP's own BPE "
            "tokenizer (without reduction masks) has a torch-free twin here"
        )
    text_cfg = open_clip.get_model_config(model.name).get("text_cfg", {})
    clean = text_cfg.get("tokenizer_kwargs", {}).get("clean", "lower")
    return TokenizerSpec(Path(default_bpe()).name, int(tokenizer.context_length), clean)


def _check_constants(
    model: TorchClip, preprocessing: Preprocessing, tokenizer: ClipTokenizer
) -> dict[str, Any]:
    """The torch-free tokenizer and transform must reproduce open_clip's on the probes."""
    expected = model.tokenizer(list(probes.TEXTS)).numpy()
    if not np.array_equal(tokenizer(probes.TEXTS), expected):
        raise ExportError(f"the torch-free tokenizer does not reproduce {model.name}'s token ids")
    difference = max(
        float(np.abs(preprocessing(image) - model.preprocess(image)).max())
        for image in probes.images()
    )
    if difference > 1e-5:
        raise ExportError(
            f"the numpy transform differs from open_clip's by {difference} on the probe images"
        )
    return {"tokens_identical": True, "preprocess_max_abs_diff": difference}


def _export_graph(module: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module.eval(),
            (sample,),
            str(path),
            input_names=["input"],
            output_names=["embeddings"],
            dynamic_axes={"input": {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _fuse(source: Path, target: Path) -> dict[str, int]:
    """``source`` fused by onnxruntime's transformer optimizer into ``target``; what it fused."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="clip", num_heads=0, hidden_size=0)
    optimized.save_model_to_file(str(target))
    return {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}


def _reference_vectors(model: TorchClip) -> dict[str, np.ndarray]:
    return {
        "image": model.encode_images(probes.images()),
        "text": model.encode_texts(list(probes.TEXTS)),
    }


def _cosines(
    staged: Path,
    graphs: dict[str, str],
    preprocessing: Preprocessing,
    tokenizer: ClipTokenizer,
    reference: dict[str, np.ndarray],
) -> dict[str, float]:
    ort = _onnxruntime()
    inputs = {
        "image": np.stack([preprocessing(image) for image in probes.images()]),
        "text": tokenizer(probes.TEXTS),
    }
    result = {}
    for part in ("image", "text"):
        session = ort.InferenceSession(
            str(staged / graphs[part]), providers=["CPUExecutionProvider"]
        )
        vectors = session.run(None, {session.get_inputs()[0].name: inputs[part]})[0]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        cosines = (vectors * reference[part]).sum(1)
        result[f"{part}_cosine_min"] = round(float(cosines.min()), 6)
        result[f"{part}_cosine_median"] = round(float(np.median(cosines)), 6)
    return result


def _quantize(unfused: Path, staged: Path, fp32: dict[str, str]) -> dict[str, str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graphs = {}
    for part, name in zip(("image", "text"), GRAPH_FILES["int8"], strict=True):
        log.info("quantizing the %s encoder to int8", part)
        quantize_dynamic(unfused / fp32[part], staged / name, weight_type=QuantType.QInt8)
        graphs[part] = name
    return graphs


def _onnxruntime() -> Any:
    import onnxruntime

    return onnxruntime
