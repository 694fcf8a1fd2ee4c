"""``pixsearch model export``: run the export and say what it produced (or why it could not)."""

from __future__ import annotations

import sys

from pixsearch.config import Settings
from pixsearch.inference.exported import choose_precision
from pixsearch.inference.model import ModelUnavailable


def export(
    settings: Settings, *, destination: str | None, quantize: str | None, force: bool
) -> int:
    try:
        from pixsearch.inference.export import ExportError
        from pixsearch.inference.export import export as run_export
    except ModuleNotFoundError as missing:
        print(
            f"pixsearch model export: needs {missing.name} (pip install 'pixsearch[export]'); "
            "without an export the torch runtime runs the model",
            file=sys.stderr,
        )
        return 2
    print(f"exporting {settings.model_tag} to ONNX...", file=sys.stderr, flush=True)
    try:
        result = run_export(settings, destination, quantize=quantize, force=force)
    except (ModelUnavailable, ExportError) as error:
        print(
            f"pixsearch model export: cannot export {settings.model_tag}: {error}. "
            "Without an export the torch runtime runs the model.",
            file=sys.stderr,
        )
        return 1
    if result.skipped:
        print(
            f"{settings.model_tag} is already exported at {result.destination} (--force redoes it)"
        )
        return 0
    manifest = result.manifest
    print(f"exported {manifest.model_tag} to {result.destination}")
    for check, outcome in manifest.quality.items():
        if isinstance(outcome, dict):
            outcome = ", ".join(f"{name} {value}" for name, value in outcome.items())
        print(f"  {check}: {outcome}")
    precision, reason = choose_precision(manifest.graphs, manifest.quality)
    print(f"  runs by default (PIXSEARCH_ONNX_PRECISION=auto): {precision}, as {reason}")
    for name, info in manifest.files.items():
        print(f"  {name}: {info['bytes'] / 1e6:.1f} MB, sha256 {info['sha256'][:16]}...")
    return 0
