"""Guarding in-process fixes to an emulator's internals against upstream changes.

A fix that replaces a function of another package is written for one version
of it. Each fix module lists the functions it relies on with a digest of
their source; :func:`mismatches` names those that changed, so the launcher can
refuse to run and a test fails on an upgrade instead of the fix going wrong.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any


def _resolve(name: str) -> Any:
    module_name, _, path = name.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in path.split("."):
        target = inspect.getattr_static(target, part)
    return target.fget if isinstance(target, property) else target


def fingerprint(name: str) -> str:
    """First 16 hex digits of the sha256 of the source of ``module:qualified.name``."""
    return hashlib.sha256(inspect.getsource(_resolve(name)).encode()).hexdigest()[:16]


def mismatches(fingerprints: Mapping[str, str]) -> list[str]:
    """The functions whose installed source differs from the digest a fix expects."""
    return [name for name, digest in fingerprints.items() if fingerprint(name) != digest]
