"""The Flask adapter (local stack, 127.0.0.1:5001): HTTP in, SearchService, JSON out."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from pixsearch.search import errors
from pixsearch.search.requests import UPLOAD_FIELD, max_request_bytes, parse_json, parse_upload
from pixsearch.search.responses import SearchResponse
from pixsearch.search.service import SearchService

log = logging.getLogger(__name__)


def create_flask_app(service: SearchService | None = None) -> Flask:
    """A Flask app over ``service`` (a new one from the environment, warming up, if None)."""
    if service is None:
        service = SearchService()
        service.start_warmup()
    settings = service.settings
    app = Flask("pixsearch.search")
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes(settings)

    @app.post("/search")
    def search() -> Any:
        query = parse_json(request.get_data(cache=False), settings)
        return _json(app, service.search(query))

    @app.post("/search/image")
    def search_image() -> Any:
        upload = request.files.get(UPLOAD_FIELD)
        query = parse_upload(
            upload.read() if upload is not None else None, request.form.to_dict(), settings
        )
        return _json(app, service.search(query))

    @app.get("/health")
    def health() -> Any:
        report = service.health()
        return report.model_dump(), report.http_status

    @app.errorhandler(errors.SearchError)
    def search_error(error: errors.SearchError) -> tuple[Response, int]:
        return jsonify(error.body()), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> tuple[Response, int]:
        error = errors.PayloadTooLarge(
            f"request is over the {settings.search_upload_max_bytes}-byte upload limit",
            code="upload_too_large",
        )
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 400
        if status == 404:
            failure: errors.SearchError = errors.route_not_found(request.path)
        elif status == 405:
            failure = errors.method_not_allowed(request.method, request.path)
        else:
            failure = errors.BadRequest(error.description or error.name)
            failure.status = status
        return jsonify(failure.body()), failure.status

    @app.errorhandler(Exception)
    def internal_error(error: Exception) -> tuple[Response, int]:
        log.exception("search request failed", exc_info=error)
        failure = errors.internal_error()
        return jsonify(failure.body()), failure.status

    return app


def _json(app: Flask, response: SearchResponse) -> Response:
    """Pydantic serializes its own model (faster than a dict through ``jsonify``)."""
    return app.response_class(response.model_dump_json(), mimetype="application/json")
