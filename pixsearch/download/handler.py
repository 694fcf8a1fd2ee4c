"""Lambda handler of the download stage: one URL list (or list part) per SQS record.

Each record fails alone (partial batch failure); its message returns to the
queue and, after ``maxReceiveCount`` tries, lands in the dead-letter queue.
"""

from __future__ import annotations

import time
from typing import Any

from pixsearch import topology
from pixsearch.config import get_settings
from pixsearch.download.stage import DownloadStage, TimeLeft
from pixsearch.events import ObjectEvent, each, process_batch
from pixsearch.storage import ObjectStore


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = get_settings()
    time_left = _time_left(context)

    def handle_one(object_event: ObjectEvent) -> None:
        store = ObjectStore(object_event.bucket, region=settings.region)
        DownloadStage(settings, store, time_left).handle(object_event)

    return process_batch(event, context, each(handle_one))


def _time_left(context: Any) -> TimeLeft:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return lambda: remaining() / 1000
    deadline = time.monotonic() + topology.stage("download").function_timeout_s
    return lambda: deadline - time.monotonic()
