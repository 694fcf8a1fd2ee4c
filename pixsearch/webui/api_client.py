"""An HTTP client of the search API, turning every failure into an :class:`ApiError`.

The web app shows an :class:`ApiError`'s message as it is, so each one says
what went wrong in words a user can act on; the API's own ``{"error": {...}}``
message is passed through unchanged.
"""

from __future__ import annotations

from typing import Any, TypeVar

import requests
import requests.auth
from pydantic import ValidationError

from pixsearch.config import Settings
from pixsearch.search.requests import UPLOAD_FIELD
from pixsearch.search.responses import Health, SearchResponse

UNREACHABLE = "api_unreachable"
BAD_RESPONSE = "bad_response"
INDEX_NOT_READY = frozenset({"index_unavailable", "unavailable"})

Model = TypeVar("Model", SearchResponse, Health)


class ApiError(Exception):
    """The API refused a request (``status`` and its ``code``) or could not be reached."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    @property
    def unreachable(self) -> bool:
        return self.code == UNREACHABLE

    @property
    def index_not_ready(self) -> bool:
        """No index to search yet (nothing ingested, or it is still loading)."""
        return self.code in INDEX_NOT_READY


class SearchApi:
    """``POST /search``, ``POST /search/image`` and ``GET /health`` of one API base URL."""

    def __init__(
        self, base_url: str, timeout_s: float = 60.0, auth: requests.auth.AuthBase | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = requests.Session()
        self._http.auth = auth

    @classmethod
    def from_settings(cls, base_url: str, settings: Settings) -> SearchApi:
        """A client that signs its requests when ``PIXSEARCH_API_AUTH=iam``."""
        if settings.api_auth == "iam":
            from pixsearch.webui.sigv4 import SigV4

            return cls(base_url, auth=SigV4(settings.region))
        return cls(base_url)

    def search_text(self, text: str, k: int, min_score: float | None = None) -> SearchResponse:
        query: dict[str, Any] = {"query_text": text, "k": k}
        if min_score is not None:
            query["min_score"] = min_score
        return self._search(query)

    def search_image_key(self, image_key: str, k: int) -> SearchResponse:
        return self._search({"image_key": image_key, "k": k})

    def search_upload(
        self, image: bytes, filename: str, k: int, min_score: float | None = None
    ) -> SearchResponse:
        fields = {"k": str(k)} | ({"min_score": str(min_score)} if min_score is not None else {})
        body = self._call(
            "POST",
            "/search/image",
            files={UPLOAD_FIELD: (filename, image, "application/octet-stream")},
            data=fields,
        )
        return _parse(SearchResponse, body)

    def health(self) -> Health:
        """The API's health report; a 503 (no index or model yet) is a report, not an error."""
        return _parse(Health, self._call("GET", "/health", accept=(503,)))

    def _search(self, query: dict[str, Any]) -> SearchResponse:
        return _parse(SearchResponse, self._call("POST", "/search", json=query))

    def _call(
        self, method: str, path: str, accept: tuple[int, ...] = (), **kwargs: Any
    ) -> dict[str, Any]:
        url = self.base_url + path
        try:
            response = self._http.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.Timeout:
            raise ApiError(
                f"the search API at {self.base_url} did not answer within {self.timeout_s:g} s",
                code=UNREACHABLE,
            ) from None
        except requests.RequestException as error:
            raise ApiError(
                f"cannot reach the search API at {self.base_url} "
                f"({type(error).__name__}); is it running (`pixsearch up`)?",
                code=UNREACHABLE,
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok or response.status_code in accept:
            if not isinstance(body, dict):
                raise ApiError(
                    f"{method} {path} answered {response.status_code} without a JSON object",
                    code=BAD_RESPONSE,
                    status=response.status_code,
                )
            return body
        raise _api_error(method, path, response.status_code, body)


def _api_error(method: str, path: str, status: int, body: Any) -> ApiError:
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return ApiError(detail["message"], code=str(detail.get("code", "error")), status=status)
    return ApiError(f"{method} {path} failed with HTTP {status}", code=BAD_RESPONSE, status=status)


def _parse(model: type[Model], body: dict[str, Any]) -> Model:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise ApiError(
            f"the search API answered with an unexpected {model.__name__}: {error.errors()[0]}",
            code=BAD_RESPONSE,
        ) from None
