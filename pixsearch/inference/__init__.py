"""The CLIP model behind one interface: the ONNX and torch runtimes, and the export between them.

``load_model(settings)`` is the one way in; importing this package imports no torch.
"""

from pixsearch.inference.loader import create_model, load_model, preload
from pixsearch.inference.model import TINY_MODEL, ClipModel, ModelUnavailable

__all__ = ["TINY_MODEL", "ClipModel", "ModelUnavailable", "create_model", "load_model", "preload"]
