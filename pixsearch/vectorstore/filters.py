"""Metadata filters: parsed once from a request, applied inside each engine's search.

``{"list": ..., "source_domain": ..., "min_width": ..., "min_height": ...,
"fetched_after": ..., "fetched_before": ...}``. The FAISS engine evaluates a
filter as a mask over a segment's row columns; the LanceDB engine as a SQL
``WHERE`` clause pre-filtering its ANN search.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from pixsearch.vectorstore.rows import RowMeta, iso_to_ms

FIELDS = ("list", "source_domain", "min_width", "min_height", "fetched_after", "fetched_before")


class InvalidFilter(ValueError):
    """A filter field that does not exist or a value it cannot take."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Filter:
    list_name: str | None = None
    source_domain: str | None = None
    min_width: int | None = None
    min_height: int | None = None
    fetched_after_ms: int | None = None  # inclusive
    fetched_before_ms: int | None = None  # exclusive

    @property
    def empty(self) -> bool:
        return all(getattr(self, item.name) is None for item in fields(self))

    def matches(self, row: RowMeta) -> bool:
        return bool(
            self.mask(
                {
                    "list_name": np.array([row.list_name], dtype=object),
                    "source_domain": np.array([row.source_domain], dtype=object),
                    "width": np.array([_or_nan(row.width)]),
                    "height": np.array([_or_nan(row.height)]),
                    "fetched_at_ms": np.array([_or_nan(row.fetched_at_ms)]),
                }
            )[0]
        )

    def mask(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Which rows match, given their columns as arrays (numbers as float, NaN unknown).

        A row whose value is unknown never matches a filter on that value.
        """
        size = len(columns["width"])
        keep = np.ones(size, dtype=bool)
        if self.list_name is not None:
            keep &= columns["list_name"] == self.list_name
        if self.source_domain is not None:
            keep &= columns["source_domain"] == self.source_domain
        with np.errstate(invalid="ignore"):
            if self.min_width is not None:
                keep &= columns["width"] >= self.min_width
            if self.min_height is not None:
                keep &= columns["height"] >= self.min_height
            if self.fetched_after_ms is not None:
                keep &= columns["fetched_at_ms"] >= self.fetched_after_ms
            if self.fetched_before_ms is not None:
                keep &= columns["fetched_at_ms"] < self.fetched_before_ms
        return keep

    def to_sql(self) -> str | None:
        """The same filter as a LanceDB ``WHERE`` clause; None when there is nothing to filter."""
        clauses = []
        if self.list_name is not None:
            clauses.append(f"list_name = {_quote(self.list_name)}")
        if self.source_domain is not None:
            clauses.append(f"source_domain = {_quote(self.source_domain)}")
        if self.min_width is not None:
            clauses.append(f"width >= {self.min_width}")
        if self.min_height is not None:
            clauses.append(f"height >= {self.min_height}")
        if self.fetched_after_ms is not None:
            clauses.append(f"fetched_at_ms >= {self.fetched_after_ms}")
        if self.fetched_before_ms is not None:
            clauses.append(f"fetched_at_ms < {self.fetched_before_ms}")
        return " AND ".join(clauses) or None


def parse_filter(raw: Mapping[str, Any] | None) -> Filter:
    """A :class:`Filter` from request values; :class:`InvalidFilter` naming the bad field."""
    if not raw:
        return Filter()
    if not isinstance(raw, Mapping):
        raise InvalidFilter("filter", 'filter must be an object, e.g. {"min_width": 512}')
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InvalidFilter(
            unknown[0], f"unknown filter field {unknown[0]!r}; fields are {', '.join(FIELDS)}"
        )
    values: dict[str, Any] = {}
    for name in ("list", "source_domain"):
        value = raw.get(name)
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise InvalidFilter(name, f"filter {name} must be a non-empty string")
            values["list_name" if name == "list" else name] = (
                value.strip().lower() if name == "source_domain" else value.strip()
            )
    for name in ("min_width", "min_height"):
        value = raw.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidFilter(
                    name, f"filter {name} must be a whole number >= 0, got {value!r}"
                )
            values[name] = value
    for name in ("fetched_after", "fetched_before"):
        value = raw.get(name)
        if value is not None:
            moment = iso_to_ms(value) if isinstance(value, str) else None
            if moment is None:
                raise InvalidFilter(
                    name, f"filter {name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z"
                )
            values[f"{name}_ms"] = moment
    return Filter(**values)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _or_nan(value: int | None) -> float:
    return float("nan") if value is None else float(value)
