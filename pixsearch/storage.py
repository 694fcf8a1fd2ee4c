"""ObjectStore: a small boto3 S3 wrapper with the conditional writes pixsearch relies on.

Immutable objects are written with ``put_if_absent`` (``IfNoneMatch="*"``); the
index manifest is replaced with ``replace_if_match`` (``IfMatch=<etag>``). Both
raise :class:`ConflictError` when the store answers 412 or 409, so callers can
treat "someone else wrote it first" as an ordinary outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "OperationAborted"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class StorageError(Exception):
    """Base class for object store errors pixsearch raises itself."""


class ConflictError(StorageError):
    """A conditional write lost: the object exists (put_if_absent) or changed (replace_if_match)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"conditional write of {key!r} refused: {detail}")
        self.key = key


class ObjectNotFound(StorageError, KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no such object: {key!r}")
        self.key = key

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None


@lru_cache(maxsize=8)
def client(service: str, region: str = "us-east-1", *, retries: int = 4) -> Any:
    """A boto3 client that retries transient errors (connection resets, 5xx, throttling).

    botocore's legacy retry mode: exponential backoff with jitter and, unlike the
    standard mode, no client-wide retry quota. The quota (500 tokens, 5 per retry)
    drains under a sustained fault rate when many threads share a client, as the
    local runtime's pollers do, and from then on nothing is retried; a stage rather
    retries a call than fails and redelivers a whole batch. ``retries=0`` suits a
    probe whose failure has a fallback.

    The endpoint comes from ``AWS_ENDPOINT_URL[_S3|_SQS]`` as boto3 reads it.
    Clients are thread-safe and cached per process (Lambda container reuse).
    """
    config = Config(
        retries={"mode": "legacy", "max_attempts": retries},
        max_pool_connections=64,
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client(service, region_name=region, config=config)


def _etag(raw: str) -> str:
    return raw.strip('"')


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class ObjectStore:
    """One bucket of an S3-compatible object store."""

    def __init__(self, bucket: str, s3: Any | None = None, region: str = "us-east-1") -> None:
        self.bucket = bucket
        self.region = region
        self._s3 = s3

    @property
    def s3(self) -> Any:
        """The boto3 client, made on first use: building one takes ~0.2 s of a cold start,
        which the search service spends in its index-loading thread, not before serving."""
        if self._s3 is None:
            self._s3 = client("s3", self.region)
        return self._s3

    @classmethod
    def from_settings(cls, settings: Any) -> ObjectStore:
        return cls(settings.bucket, region=settings.region)

    def get(self, key: str) -> bytes:
        return self.get_with_info(key)[0]

    def get_with_info(self, key: str) -> tuple[bytes, ObjectInfo]:
        response = self._get_object(key)
        body = response["Body"].read()
        return body, self._info(key, response, len(body))

    def stream(
        self, key: str, chunk_bytes: int = 1024 * 1024
    ) -> tuple[Iterator[bytes], ObjectInfo]:
        """The object's bytes in chunks as they arrive (never all in memory), and its info."""
        response = self._get_object(key)
        info = self._info(key, response, int(response.get("ContentLength") or 0))
        return response["Body"].iter_chunks(chunk_bytes), info

    def _get_object(self, key: str) -> dict[str, Any]:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from error
            raise

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in _NOT_FOUND_CODES:
                return None
            raise
        return self._info(key, response, response["ContentLength"])

    def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        return self._put(key, data, content_type, metadata)

    def put_if_absent(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Create ``key`` only if it does not exist; :class:`ConflictError` otherwise."""
        return self._put(key, data, content_type, metadata, IfNoneMatch="*")

    def replace_if_match(
        self, key: str, data: bytes, etag: str, *, content_type: str | None = None
    ) -> str:
        """Replace ``key`` only if its ETag is still ``etag``; :class:`ConflictError` otherwise."""
        return self._put(key, data, content_type, None, IfMatch=f'"{_etag(etag)}"')

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    item["Key"],
                    _etag(item["ETag"]),
                    item["Size"],
                    last_modified=item.get("LastModified"),
                )

    def count(self, prefix: str = "") -> int:
        return sum(1 for _ in self.list(prefix))

    def presigned_get_url(self, key: str, expires_s: int = 3600) -> str:
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )

    def _put(
        self,
        key: str,
        data: bytes,
        content_type: str | None,
        metadata: dict[str, str] | None,
        **conditions: str,
    ) -> str:
        extra: dict[str, Any] = dict(conditions)
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = metadata
        try:
            response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        except ClientError as error:
            code = _error_code(error)
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if conditions and (code in _CONFLICT_CODES or status in (409, 412)):
                raise ConflictError(key, code or str(status)) from error
            raise
        return _etag(response["ETag"])

    @staticmethod
    def _info(key: str, response: dict[str, Any], size: int) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            etag=_etag(response["ETag"]),
            size=size,
            content_type=response.get("ContentType"),
            metadata=dict(response.get("Metadata") or {}),
            last_modified=response.get("LastModified"),
        )
