"""The FastAPI adapter (API Gateway HTTP API through Mangum); it also serves the OpenAPI schema."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from pixsearch.search import errors
from pixsearch.search.requests import (
    UPLOAD_FIELD,
    SearchBody,
    max_request_bytes,
    parse_json,
    parse_upload,
)
from pixsearch.search.responses import ErrorResponse, Health, SearchResponse
from pixsearch.search.service import SearchService

log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 413, 422, 503)
}
_UPLOAD_SCHEMA = {
    "type": "object",
    "required": [UPLOAD_FIELD],
    "properties": {
        UPLOAD_FIELD: {"type": "string", "format": "binary"},
        "k": {"type": "integer", "minimum": 1},
        "min_score": {"type": "number", "minimum": -1, "maximum": 1},
        "filter": {"type": "string", "description": "A JSON object, as in POST /search"},
    },
}


def create_fastapi_app(service: SearchService | None = None) -> FastAPI:
    """A FastAPI app over ``service`` (a new one from the environment, warming up, if None)."""
    if service is None:
        service = SearchService()
        service.start_warmup()
    settings = service.settings
    app = FastAPI(title="pixsearch search", version="0.1.0")
    app.state.search_service = service

    @app.post(
        "/search",
        response_model=SearchResponse,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": SearchBody.model_json_schema()}},
            }
        },
    )
    async def search(request: Request) -> Response:
        _check_length(request, max_request_bytes(settings))
        query = parse_json(await request.body(), settings)
        response = await run_in_threadpool(service.search, query)
        return Response(response.model_dump_json(), media_type="application/json")

    @app.post(
        "/search/image",
        response_model=SearchResponse,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"multipart/form-data": {"schema": _UPLOAD_SCHEMA}},
            }
        },
    )
    async def search_image(request: Request) -> Response:
        _check_length(request, max_request_bytes(settings))
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get(UPLOAD_FIELD)
        image = await upload.read() if isinstance(upload, UploadFile) else None
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        query = parse_upload(image, fields, settings)
        response = await run_in_threadpool(service.search, query)
        return Response(response.model_dump_json(), media_type="application/json")

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health() -> JSONResponse:
        report = service.health()
        return JSONResponse(report.model_dump(), status_code=report.http_status)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> JSONResponse:
        log.exception("search request failed", exc_info=error)
        failure = errors.internal_error()
        return JSONResponse(failure.body(), status_code=failure.status)

    @app.exception_handler(errors.SearchError)
    async def search_error(_: Request, error: errors.SearchError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 404:
            failure: errors.SearchError = errors.route_not_found(request.url.path)
        elif error.status_code == 405:
            failure = errors.method_not_allowed(request.method, request.url.path)
        else:
            failure = errors.BadRequest(str(error.detail))
            failure.status = error.status_code
        return JSONResponse(failure.body(), status_code=failure.status)

    return app


def _check_length(request: Request, limit: int) -> None:
    """Refuse an oversized body from its Content-Length, before reading it."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise errors.PayloadTooLarge(
            f"request body of {length} bytes is over the {limit}-byte limit",
            code="upload_too_large",
        )
