"""What happened to one URL: a URL map row, and the failure that fills its reason.

Reason codes are stable (operators filter and count by them): the row could
not be read (``bad_url``, ``missing_url``, ``bad_row``, ``unparseable_list``);
the fetch was refused or failed (``blocked_address``, ``dns``, ``connection``,
``tls``, ``bad_response``, ``timeout``, ``deadline``, ``http_<status>``,
``too_many_redirects``, ``too_large``, ``robots_disallowed``); the body is not an
acceptable image (``not_image``, ``unsupported_format``, ``corrupt``, ``bomb``);
or it could not be kept (``storage``, ``internal``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["ok", "duplicate", "failed"]
STATUSES: tuple[Status, ...] = ("ok", "duplicate", "failed")


class DownloadFailure(Exception):
    """A URL that ends without an image: ``reason`` is a stable code, the message says more."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class MapRow:
    """One line of a URL map (JSONL): every input row gets exactly one."""

    line: int
    url: str
    status: Status
    key: str | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    content_type: str | None = None
    error: str | None = None
    message: str | None = None
    caption: str | None = None
    fetched_at: str | None = None

    @classmethod
    def failed(cls, line: int, url: str, failure: DownloadFailure, **extra: Any) -> MapRow:
        return cls(
            line=line,
            url=url,
            status="failed",
            error=failure.reason,
            message=failure.message,
            fetched_at=now_iso(),
            **extra,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MapRow:
        return cls(**json.loads(text))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_map(rows: list[MapRow]) -> bytes:
    return "".join(row.to_json() + "\n" for row in rows).encode()


def decode_map(data: bytes) -> list[MapRow]:
    return [MapRow.from_json(line) for line in data.decode().splitlines() if line.strip()]
