"""The search API's errors, defined once: each has a stable code and an HTTP status.

Both HTTP adapters answer any :class:`SearchError` as
``{"error": {"code": ..., "message": ...}}`` with its status; nothing a client
sends can turn into a 500.
"""

from __future__ import annotations

from typing import Any


class SearchError(Exception):
    """A request the service cannot answer, with the reason a client can act on."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(SearchError):
    """Malformed or inconsistent request (codes: malformed_json, missing_query, ...)."""


class NotFound(SearchError):
    status = 404
    code = "not_found"


class PayloadTooLarge(SearchError):
    status = 413
    code = "payload_too_large"


class InvalidImage(SearchError):
    """The query image could not be fetched, decoded or accepted."""

    status = 422
    code = "invalid_image"


class Unavailable(SearchError):
    """No index or no model yet: the service cannot answer any query right now."""

    status = 503
    code = "unavailable"


def method_not_allowed(method: str, path: str) -> SearchError:
    error = SearchError(f"{method} is not allowed on {path}", code="method_not_allowed")
    error.status = 405
    return error


def route_not_found(path: str) -> NotFound:
    return NotFound(f"no such route: {path}", code="no_such_route")


def internal_error() -> SearchError:
    """A fault of the service itself (logged); its details stay in the log."""
    error = SearchError("the search service failed; see its log", code="internal_error")
    error.status = 500
    return error
