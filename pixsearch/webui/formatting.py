"""Small text helpers for what the web app shows."""

from __future__ import annotations


def format_age(seconds: float | None) -> str:
    """``42.3`` -> ``"42 s ago"``, ``7200`` -> ``"2 h ago"``; ``None`` -> ``"never"``."""
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def format_score(score: float) -> str:
    return f"score {score:.3f}"
