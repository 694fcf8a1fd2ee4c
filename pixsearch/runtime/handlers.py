"""The stage handlers this installation has: each stage's ``module:function`` from the
topology, imported where its package is installed (a function image holds only its own)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pixsearch import topology

Handler = Callable[[dict[str, Any], Any], Any]


def import_handler(path: str) -> Handler | None:
    """``"module:function"`` -> the function, or None when the module does not exist yet."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            return None
        raise
    return getattr(module, attribute)


def available_handlers() -> dict[str, Handler]:
    """The handlers of the stages that exist in this installation, by stage name."""
    found = {spec.name: import_handler(spec.handler) for spec in topology.STAGES}
    return {name: handler for name, handler in found.items() if handler is not None}
