"""Keeping records invisible while a handler works on them, and no longer than that.

The local queues have a short visibility timeout; a heartbeat extends it for
every record in flight. Each record carries a deadline (its batch's function
timeout): past it the heartbeat lets go, so a hung batch becomes visible again
and is redelivered, then dead-lettered, as on Lambda.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

BATCH_LIMIT = 10  # SQS's limit for one batch call
# Entry errors meaning the receipt handle will never work again (message deleted,
# moved to the DLQ, or received anew): stop extending it.
_GONE = {"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"}


class InFlight:
    """Receipt handles being handled, per queue, each with the monotonic time to let go."""

    def __init__(self) -> None:
        self._deadlines: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, queue_url: str, receipts: list[str], deadline: float) -> None:
        with self._lock:
            handles = self._deadlines.setdefault(queue_url, {})
            handles.update(dict.fromkeys(receipts, deadline))

    def remove(self, queue_url: str, receipts: list[str]) -> None:
        with self._lock:
            handles = self._deadlines.get(queue_url, {})
            for receipt in receipts:
                handles.pop(receipt, None)

    def live(self, now: float | None = None) -> dict[str, list[str]]:
        """The handles still within their deadline; expired ones are dropped."""
        now = time.monotonic() if now is None else now
        with self._lock:
            result = {}
            for url, handles in self._deadlines.items():
                for receipt in [r for r, deadline in handles.items() if deadline <= now]:
                    log.warning("a record on %s passed its function timeout; letting it go", url)
                    del handles[receipt]
                if handles:
                    result[url] = sorted(handles)
            return result


def extend(sqs: Any, in_flight: InFlight, visibility_timeout_s: int) -> None:
    """Push back the visibility of every live record; handles that are gone are dropped.

    An entry that failed for another reason (throttling, a fault) is tried once
    more at once and otherwise at the next beat, well before its visibility ends.
    """
    for queue_url, receipts in in_flight.live().items():
        for start in range(0, len(receipts), BATCH_LIMIT):
            chunk = receipts[start : start + BATCH_LIMIT]
            retry = _extend_chunk(sqs, in_flight, queue_url, chunk, visibility_timeout_s)
            if retry:
                _extend_chunk(sqs, in_flight, queue_url, retry, visibility_timeout_s)


def _extend_chunk(
    sqs: Any, in_flight: InFlight, queue_url: str, receipts: list[str], visibility_timeout_s: int
) -> list[str]:
    """One ``change_message_visibility_batch``; returns the handles worth trying again."""
    entries = [
        {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": visibility_timeout_s}
        for i, r in enumerate(receipts)
    ]
    try:
        response = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    except Exception:  # noqa: BLE001 - the next beat tries again
        log.warning("could not extend visibility on %s", queue_url, exc_info=True)
        return []
    retry = []
    for failure in response.get("Failed") or []:
        receipt = receipts[int(failure["Id"])]
        if failure.get("Code") in _GONE:
            in_flight.remove(queue_url, [receipt])
            # Usually a batch settled between the heartbeat's look and its call.
            log.debug("record on %s is no longer in flight (%s)", queue_url, failure.get("Code"))
        else:
            retry.append(receipt)
            log.warning("could not extend a record's visibility: %s", failure.get("Message"))
    return retry
