"""Response shapes of the search API (also its OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SearchResult(BaseModel):
    key: str = Field(description="Object key of the image in the bucket")
    score: float = Field(description="Cosine similarity to the query, -1..1")
    source_url: str | None = Field(description="URL the image was downloaded from")
    image_url: str = Field(description="A URL a browser can load the image from")
    width: int | None = None
    height: int | None = None
    list_name: str | None = Field(default=None, description="The URL list it came in")
    source_domain: str | None = None
    bytes: int | None = Field(default=None, description="Size of the stored image")
    fetched_at: str | None = Field(default=None, description="When it was downloaded (UTC)")
    caption: str | None = Field(default=None, description="Its caption in the URL list")


class SearchResponse(BaseModel):
    results: list[SearchResult]
    model: str
    index_version: int | str
    took_ms: float
    engine: str = Field(default="faiss", description="The vector store that answered")


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    reason: str | None = None
    model: str
    model_loaded: bool
    index_version: int | str | None = None
    vector_count: int | None = None
    segment_count: int | None = None
    engine: str = "faiss"
    index_age_s: float | None = Field(
        default=None, description="Seconds since the served index was loaded"
    )
    checked_age_s: float | None = Field(
        default=None, description="Seconds since the manifest was last checked"
    )
    query_cache: dict[str, int]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unavailable" else 200


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
