"""A URL list cut into parts, each small enough for one invocation, and their queueing.

A part is stored under ``parts/`` (no trigger watches it) and announced on the
download queue with the same S3 notification S3 itself would send. The
download handler therefore sees one kind of message, and a part can never
re-trigger its list. Parts are pure functions of the list's content, so
writing them again on a duplicate event changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from pixsearch import layout
from pixsearch.download.outcome import now_iso
from pixsearch.download.urllist import BadRow, Row, UrlEntry
from pixsearch.events import encode_key
from pixsearch.storage import ObjectStore

SQS_BATCH = 10


@dataclass(frozen=True)
class ListPart:
    list_key: str
    list_etag: str
    part: int
    parts: int
    rows: tuple[Row, ...]

    @property
    def list_name(self) -> str:
        return layout.list_name(self.list_key)

    @property
    def key(self) -> str:
        return layout.part_key(self.list_name, self.part)

    @property
    def entries(self) -> list[UrlEntry]:
        return [row for row in self.rows if isinstance(row, UrlEntry)]

    def to_json(self) -> bytes:
        body = {
            "list_key": self.list_key,
            "list_etag": self.list_etag,
            "part": self.part,
            "parts": self.parts,
            "rows": [asdict(row) for row in self.rows],
        }
        return json.dumps(body, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ListPart:
        body = json.loads(data)
        rows = tuple(UrlEntry(**row) if "url" in row else BadRow(**row) for row in body.pop("rows"))
        return cls(rows=rows, **body)


def split(list_key: str, list_etag: str, rows: list[Row], chunk_size: int) -> list[ListPart]:
    """``rows`` in parts of at most ``chunk_size``; an empty list still has one (empty) part."""
    chunks = [rows[i : i + chunk_size] for i in range(0, len(rows), chunk_size)] or [[]]
    return [
        ListPart(list_key, list_etag, number, len(chunks), tuple(chunk))
        for number, chunk in enumerate(chunks)
    ]


def write_parts(store: ObjectStore, parts: list[ListPart]) -> dict[str, str]:
    """Store every part; returns each part key's ETag. Drops parts and maps of an older,
    longer version of the same list."""
    etags = {
        part.key: store.put(part.key, part.to_json(), content_type="application/json")
        for part in parts
    }
    name, count = parts[0].list_name, len(parts)
    for prefix, parse in (
        (f"{layout.PARTS}{name}/", layout.parse_part_key),
        (layout.url_map_prefix(name), layout.parse_url_map_key),
    ):
        for info in list(store.list(prefix)):
            try:
                owner, number = parse(info.key)
            except ValueError:
                continue
            if owner == name and number >= count:
                store.delete(info.key)
    return etags


def read_part(store: ObjectStore, key: str) -> ListPart:
    return ListPart.from_json(store.get(key))


def queue_parts(
    sqs: Any, queue_url: str, bucket: str, region: str, part_etags: dict[str, str]
) -> None:
    """Announce parts on the download queue as S3 ``ObjectCreated`` notifications."""
    items = list(part_etags.items())
    for start in range(0, len(items), SQS_BATCH):
        batch = items[start : start + SQS_BATCH]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": json.dumps(s3_notification(bucket, key, etag, region)),
                }
                for i, (key, etag) in enumerate(batch)
            ],
        )
        if response.get("Failed"):
            raise RuntimeError(f"could not queue list parts: {response['Failed']}")


def s3_notification(bucket: str, key: str, etag: str, region: str) -> dict[str, Any]:
    """The body S3 sends to SQS for an ``ObjectCreated:Put`` of ``key``."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": now_iso(),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": encode_key(key), "eTag": etag},
                },
            }
        ]
    }
