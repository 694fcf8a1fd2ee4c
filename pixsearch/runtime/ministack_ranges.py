"""MiniStack answering a ranged GET from the bytes asked for (installed by
:mod:`pixsearch.runtime.ministack_fixes`, which checks the MiniStack version).

With ``S3_PERSIST=1`` MiniStack's ``GetObject`` reads the whole object file and
then slices out the requested range. LanceDB reads its tables in many small
ranged GETs (a query's index partitions and result rows, a compaction's or an
index update's pages), so each one cost a read of the whole data file: tens of
megabytes per few-kilobyte request, about 20 ms each on a 20 MB file, and
more as compaction makes the files larger. That was most of the server's time
during an add to a 30,000-row table (86 s of a 95 s ``optimize``).

The fix: while a ranged ``GetObject`` of an object kept on disk runs, the body
MiniStack reads is just the range (read with a seek), wrapped so that
MiniStack's own slicing of it returns those bytes. Everything else (headers,
preconditions, 416 for a bad range, part numbers, objects in memory) is
MiniStack's own code, unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from pixsearch.runtime import patching

# pixsearch.runtime.patching.fingerprint() of each MiniStack function the fix relies on.
FINGERPRINTS = {
    "ministack.services.s3:_get_object": "64ad7071ef0ec45a",
    "ministack.services.s3:_read_body": "596e56d63502e15f",
    "ministack.services.s3:_parse_range": "0631595e6e00e40f",
    "ministack.services.s3:_object_disk_path": "0a7ed55714d95566",
}

_wanted = threading.local()  # the Range header of the GetObject running on this thread


class RangeBody:
    """An object body of which only ``data``, at ``start``, was read; the slice
    ``[start:start + len(data)]`` (what ``GetObject`` takes of a body) gives it back."""

    def __init__(self, data: bytes, start: int, size: int) -> None:
        self.data = data
        self.start = start
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, part: slice) -> bytes:
        if part != slice(self.start, self.start + len(self.data)):
            raise ValueError(f"only bytes {self.start}-{self.start + len(self.data) - 1} read")
        return self.data


def mismatches() -> list[str]:
    return patching.mismatches(FINGERPRINTS)


def apply(s3: Any) -> None:
    """Make a ranged ``GetObject`` of a persisted object read only its range."""
    changed = mismatches()
    if changed:
        raise RuntimeError(
            f"pixsearch's MiniStack range fix no longer matches these functions: "
            f"{', '.join(changed)}"
        )
    get_object, read_body = s3._get_object, s3._read_body

    def ranged_get_object(bucket_name: str, key: str, headers: dict, query_params=None):
        ranged = headers.get("range") and not s3._qp(query_params or {}, "partNumber")
        _wanted.range = headers["range"] if ranged else None
        try:
            return get_object(bucket_name, key, headers, query_params)
        finally:
            _wanted.range = None

    def range_read_body(bucket_name: str, key: str, obj: dict) -> Any:
        wanted = getattr(_wanted, "range", None)
        bounds = s3._parse_range(wanted, obj["size"]) if wanted else None
        path = s3._object_disk_path(bucket_name, key) if s3.S3_PERSIST else None
        if bounds is None or obj.get("body") is not None or path is None:
            return read_body(bucket_name, key, obj)
        start, end = bounds
        try:
            with open(path, "rb") as file:
                file.seek(start)
                data = file.read(end - start + 1)
        except OSError:
            return read_body(bucket_name, key, obj)
        return RangeBody(data, start, obj["size"])

    s3._get_object = ranged_get_object
    s3._read_body = range_read_body
