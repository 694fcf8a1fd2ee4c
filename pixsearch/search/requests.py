"""Search request validation, shared by every adapter and the CLI.

``POST /search`` takes JSON ``{"query_text" | "image_key" | "image_url", "k", "min_score",
"filter", "mode"}``; ``POST /search/image`` takes a multipart upload with the same
optional ``k``, ``min_score`` and ``filter`` (a JSON object) as form fields. Both
become one :class:`SearchRequest` or raise a
:class:`~pixsearch.search.errors.SearchError` naming what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from pixsearch import layout
from pixsearch.config import Settings
from pixsearch.search.errors import BadRequest, PayloadTooLarge
from pixsearch.vectorstore.filters import FIELDS as FILTER_FIELDS
from pixsearch.vectorstore.filters import Filter, InvalidFilter, parse_filter

DEFAULT_K = 5
MODES = ("clip", "hybrid")
UPLOAD_FIELD = "image"
# Multipart framing allowed around an upload at the size limit.
MULTIPART_SLACK = 64 * 1024


@dataclass(frozen=True)
class SearchRequest:
    """One validated query: exactly one of text, image key, image URL or image bytes."""

    k: int = DEFAULT_K
    min_score: float | None = None
    text: str | None = None
    image_key: str | None = None
    image_url: str | None = None
    image_bytes: bytes | None = None
    where: Filter = field(default_factory=Filter)
    mode: str = "clip"  # "hybrid": CLIP ranking fused with the caption ranking

    @property
    def kind(self) -> str:
        if self.text is not None:
            return "text"
        if self.image_key is not None:
            return "image_key"
        if self.image_url is not None:
            return "image_url"
        return "upload"


class SearchBody(BaseModel):
    """The JSON body of ``POST /search`` (exactly one of the three queries)."""

    model_config = ConfigDict(extra="forbid")

    query_text: StrictStr | None = None
    image_key: StrictStr | None = None
    image_url: StrictStr | None = None
    k: StrictInt = DEFAULT_K
    min_score: StrictInt | StrictFloat | None = None
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Only rows matching all of: " + ", ".join(FILTER_FIELDS),
        examples=[{"list": "cats", "min_width": 512, "fetched_after": "2026-01-01T00:00:00Z"}],
    )
    mode: Literal["clip", "hybrid"] = "clip"


_FIELD_CODES = {
    "k": "invalid_k",
    "min_score": "invalid_min_score",
    "query_text": "invalid_query_text",
    "image_key": "invalid_image_key",
    "image_url": "invalid_image_url",
    "filter": "invalid_filter",
    "mode": "invalid_mode",
}


def parse_json(body: bytes | str, settings: Settings) -> SearchRequest:
    """Validate a ``POST /search`` body."""
    if len(body) > settings.search_upload_max_bytes:
        raise PayloadTooLarge(
            f"request body is over {settings.search_upload_max_bytes} bytes",
            code="body_too_large",
        )
    if not body.strip():
        raise BadRequest("request body is empty; send a JSON object", code="malformed_json")
    try:
        parsed = SearchBody.model_validate_json(body)
    except ValidationError as error:
        raise _translate(error, settings) from None
    return build_request(
        settings,
        k=parsed.k,
        min_score=parsed.min_score,
        text=parsed.query_text,
        image_key=parsed.image_key,
        image_url=parsed.image_url,
        where=parsed.filter,
        mode=parsed.mode,
    )


def parse_upload(image: bytes | None, form: Mapping[str, str], settings: Settings) -> SearchRequest:
    """Validate a ``POST /search/image`` multipart upload (file field ``image``)."""
    if image is None:
        raise BadRequest(
            f"multipart form field {UPLOAD_FIELD!r} with the image file is required",
            code="missing_query",
        )
    check_upload_size(len(image), settings)
    if not image:
        raise BadRequest("the uploaded image is empty", code="invalid_image")
    unknown = sorted(set(form) - {"k", "min_score", "filter"})
    if unknown:
        raise BadRequest(f"unknown form fields: {', '.join(unknown)}", code="unknown_field")
    return build_request(
        settings,
        k=_form_number(form, "k", int, DEFAULT_K),
        min_score=_form_number(form, "min_score", float, None),
        image_bytes=image,
        where=_form_filter(form.get("filter")),
    )


def check_upload_size(size: int, settings: Settings) -> None:
    if size > settings.search_upload_max_bytes:
        raise PayloadTooLarge(
            f"upload is over the {settings.search_upload_max_bytes}-byte limit",
            code="upload_too_large",
        )


def max_request_bytes(settings: Settings) -> int:
    """The largest request body worth reading: an upload at the limit plus its framing."""
    return settings.search_upload_max_bytes + MULTIPART_SLACK


def build_request(
    settings: Settings,
    *,
    k: int,
    min_score: float | None,
    text: str | None = None,
    image_key: str | None = None,
    image_url: str | None = None,
    image_bytes: bytes | None = None,
    where: Mapping[str, Any] | None = None,
    mode: str = "clip",
) -> SearchRequest:
    """A :class:`SearchRequest` from already typed values, checked against ``settings``."""
    given = [
        name
        for name, value in (
            ("query_text", text),
            ("image_key", image_key),
            ("image_url", image_url),
            ("image", image_bytes),
        )
        if value is not None
    ]
    if not given:
        raise BadRequest(
            "send one of query_text, image_key or image_url (or upload to /search/image)",
            code="missing_query",
        )
    if len(given) > 1:
        raise BadRequest(
            f"send exactly one query, got {' and '.join(given)}", code="conflicting_query"
        )
    if not 1 <= k <= settings.search_k_max:
        raise BadRequest(
            f"k must be an integer from 1 to {settings.search_k_max}, got {k}", code="invalid_k"
        )
    if min_score is not None and not (math.isfinite(min_score) and -1.0 <= min_score <= 1.0):
        raise BadRequest(
            f"min_score must be a number from -1 to 1, got {min_score}", code="invalid_min_score"
        )
    if text is not None:
        text = text.strip()
        if not text:
            raise BadRequest("query_text is empty", code="missing_query")
        if len(text) > settings.search_text_max_chars:
            raise BadRequest(
                f"query_text is {len(text)} characters; the limit is "
                f"{settings.search_text_max_chars}",
                code="text_too_long",
            )
    if image_key is not None and not (
        image_key.startswith(layout.IMAGES) and len(image_key) > len(layout.IMAGES)
    ):
        raise BadRequest(
            f"image_key must name an object under {layout.IMAGES!r}, got {image_key!r}",
            code="invalid_image_key",
        )
    if image_url is not None and not image_url.lower().startswith(("http://", "https://")):
        raise BadRequest("image_url must be an http or https URL", code="invalid_image_url")
    if mode not in MODES:
        raise BadRequest(
            f"mode must be one of {', '.join(MODES)}, got {mode!r}", code="invalid_mode"
        )
    if mode == "hybrid" and text is None:
        raise BadRequest("mode hybrid ranks captions by query_text; send one", code="invalid_mode")
    try:
        parsed_filter = parse_filter(where)
    except InvalidFilter as error:
        code = "unknown_filter" if error.field not in FILTER_FIELDS else "invalid_filter"
        raise BadRequest(str(error), code=code) from None
    return SearchRequest(
        k=k,
        min_score=float(min_score) if min_score is not None else None,
        text=text,
        image_key=image_key,
        image_url=image_url,
        image_bytes=image_bytes,
        where=parsed_filter,
        mode=mode,
    )


def _form_filter(raw: str | None) -> dict[str, Any] | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise BadRequest("filter must be a JSON object", code="invalid_filter") from None
    if not isinstance(value, dict):
        raise BadRequest("filter must be a JSON object", code="invalid_filter")
    return value


def _form_number(form: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        article = "an integer" if kind is int else "a number"
        raise BadRequest(
            f"{name} must be {article}, got {raw!r}", code=_FIELD_CODES[name]
        ) from None


def _translate(error: ValidationError, settings: Settings) -> BadRequest:
    first = error.errors(include_url=False)[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid":
        return BadRequest(f"request body is not valid JSON: {first['msg']}", code="malformed_json")
    if kind == "model_type" or not loc:
        return BadRequest("request body must be a JSON object", code="malformed_json")
    field = str(loc[0])
    if kind == "extra_forbidden":
        return BadRequest(
            f"unknown field {field!r}; fields are query_text, image_key, image_url, k, "
            "min_score, filter, mode",
            code="unknown_field",
        )
    if field == "k":
        return BadRequest(
            f"k must be an integer from 1 to {settings.search_k_max}, got {first['input']!r}",
            code="invalid_k",
        )
    return BadRequest(f"{field}: {first['msg']}", code=_FIELD_CODES.get(field, "bad_request"))
