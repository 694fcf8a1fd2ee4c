"""Lambda's SQS event source mapping, done locally: poll queues, invoke handlers, settle.

For every stage of the topology the dispatcher receives batches from the stage's
queue, hands them to the stage's handler in Lambda's event shape with a context
object, deletes the records that succeeded and leaves the ``batchItemFailures``
(or the whole batch, if the handler raised) for redelivery after the visibility
timeout. The queue's own redrive policy moves a record received more than
``maxReceiveCount`` times to the dead-letter queue, exactly as on AWS.

Each stage's function timeout from the topology holds as on Lambda: a handler
still running past it has its whole batch returned for redelivery (its late
answer is ignored), so a batch that always hangs ends in the DLQ.

Two deliberate differences: local queues have a short visibility timeout and the
dispatcher extends it while a batch is in flight (never past the function
timeout), so a failed record is retried in seconds rather than after six
function timeouts; and a batch is handed over as soon as its queue has been
quiet for ``local_batch_quiet_s`` (as well as when full or at the end of the
batching window), so a drained queue does not hold its last records for the
whole window. The first reason each record failed is noted in the data
directory for ``pixsearch dlq list``.

While it runs both the download and the embed stage, the images the first stores
are handed to the second in memory (:mod:`pixsearch.recent_images`), so the embed
stage does not read back what this process has just written.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from pixsearch import recent_images, topology
from pixsearch.config import Settings
from pixsearch.events import failure_reasons
from pixsearch.runtime.failures import FailureJournal
from pixsearch.runtime.handlers import Handler, available_handlers
from pixsearch.runtime.lambda_shapes import LambdaContext, lambda_sqs_event
from pixsearch.runtime.visibility import BATCH_LIMIT, InFlight, extend
from pixsearch.storage import client

log = logging.getLogger(__name__)


@dataclass
class StageStats:
    invocations: int = 0
    records: int = 0
    failed_records: int = 0
    errors: int = 0
    timeouts: int = 0


class _Invocation(threading.Thread):
    """One handler call in a thread of its own, so the caller can stop waiting at the timeout.

    Python cannot kill the thread: a handler past its timeout runs on, unwatched,
    and whatever it answers is ignored, as Lambda would have ended it.
    """

    def __init__(self, handler: Handler, event: dict[str, Any], context: LambdaContext) -> None:
        super().__init__(name=f"invoke-{context.function_name}", daemon=True)
        self.handler, self.event, self.context = handler, event, context
        self.response: Any = None
        self.error: BaseException | None = None
        self.reasons: dict[str, str] = {}

    def run(self) -> None:
        with failure_reasons() as reasons:
            try:
                self.response = self.handler(self.event, self.context)
            except BaseException as error:  # noqa: BLE001 - reported to the dispatcher
                self.error = error
            self.reasons = dict(reasons)


class Dispatcher:
    """Drives the stage handlers from their queues the way Lambda's SQS event source does."""

    def __init__(
        self,
        settings: Settings,
        queue_urls: dict[str, topology.QueueUrls],
        handlers: dict[str, Handler] | None = None,
        function_timeouts_s: dict[str, float] | None = None,
    ) -> None:
        """``function_timeouts_s`` overrides the topology's function timeout per stage."""
        self.settings = settings
        self.queue_urls = queue_urls
        self.handlers = available_handlers() if handlers is None else handlers
        self.stats = {name: StageStats() for name in self.handlers}
        self.timeouts_s = {
            spec.name: float((function_timeouts_s or {}).get(spec.name, spec.function_timeout_s))
            for spec in topology.STAGES
        }
        self.sqs = client("sqs", settings.region)
        self.journal = FailureJournal(settings.data_dir)
        self._arns: dict[str, str] = {}
        self.in_flight = InFlight()
        # Failed records wait out their visibility timeout before redelivery; on stop they
        # are made visible again so a shutdown can save them (message id -> queue, receipt).
        self._awaiting_retry: dict[str, tuple[str, str]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._handover = ExitStack()

    @property
    def absent_stages(self) -> list[str]:
        return [spec.name for spec in topology.STAGES if spec.name not in self.handlers]

    # --- running in the background -------------------------------------------------

    def start(self) -> None:
        """Start one poller thread per unit of each stage's concurrency, plus the heartbeat."""
        self._stop.clear()
        self._hand_images_over()
        for name in self.handlers:
            for worker in range(topology.stage(name).max_concurrency):
                thread = threading.Thread(
                    target=self._poll_forever, args=(name,), name=f"{name}-{worker}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(self._stop,), name="heartbeat", daemon=True
        )
        heartbeat.start()
        self._threads.append(heartbeat)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop polling; batches in flight finish first (up to ``timeout_s``).

        Records waiting to be retried become visible again, so nothing is hidden
        from whoever reads the queue next (e.g. the local stack saving its state).
        """
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        for queue_url, receipt in list(self._awaiting_retry.values()):
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
            except Exception:  # noqa: BLE001 - already redelivered, moved or deleted
                log.debug("record %s no longer awaits a retry", receipt)
        self._awaiting_retry.clear()
        self._handover.close()

    def _hand_images_over(self) -> None:
        """With both stages here, the embed stage takes the images the download stage
        just stored from memory (up to ``local_image_cache_mb``)."""
        if {"download", "embed"} <= self.handlers.keys():
            max_bytes = self.settings.local_image_cache_mb * 1024 * 1024
            self._handover.enter_context(recent_images.enabled(max_bytes))

    def _poll_forever(self, name: str) -> None:
        spec = topology.stage(name)
        while not self._stop.is_set():
            try:
                messages = self._receive(name, wait=True, window_s=spec.batching_window_s)
                if messages:
                    self._invoke(name, messages)
            except Exception:  # noqa: BLE001 - a poller must survive a flaky endpoint
                log.exception("poller for stage %s failed; retrying", name)
                self._stop.wait(1.0)

    def _heartbeat(self, stop: threading.Event) -> None:
        period = max(0.5, self.settings.local_visibility_timeout_s / 3)
        while not stop.wait(period):
            self.extend_visibility()

    def extend_visibility(self) -> None:
        """Push back the visibility timeout of every record still within its function timeout."""
        extend(self.sqs, self.in_flight, self.settings.local_visibility_timeout_s)

    # --- running to completion (tests, one-shot runs) -------------------------------

    def drain(self, timeout_s: float = 120.0) -> None:
        """Handle messages until every stage queue is empty and nothing is in flight.

        Records that failed come back after the visibility timeout and are handled
        again until they succeed or the redrive policy moves them to the DLQ, so a
        drain also waits for those.
        """
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(done,), daemon=True)
        heartbeat.start()
        self._hand_images_over()
        try:
            self._drain(time.monotonic() + timeout_s)
        finally:
            done.set()
            heartbeat.join()
            self._handover.close()

    def _drain(self, deadline: float) -> None:
        # Two idle looks in a row: a queue's visible and hidden counts are read one after
        # the other, so a record turning visible in between is counted in neither.
        quiet = 0
        while time.monotonic() < deadline:
            worked = False
            for spec in topology.STAGES:
                if spec.name not in self.handlers:
                    continue
                messages = self._receive(spec.name, wait=False, window_s=0)
                if messages:
                    worked = True
                    self._invoke(spec.name, messages)
            quiet = 0 if worked or not self.idle() else quiet + 1
            if quiet >= 2:
                return
            if not worked:
                time.sleep(0.2)
        raise TimeoutError(f"queues not drained in time: {self.depths()}")

    def depths(self) -> dict[str, tuple[int, int]]:
        """(visible, in flight) per stage queue."""
        result = {}
        for name, urls in self.queue_urls.items():
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=urls.queue,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            result[name] = (
                int(attributes["ApproximateNumberOfMessages"]),
                int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            )
        return result

    def idle(self) -> bool:
        return all(
            visible == 0 and hidden == 0
            for name, (visible, hidden) in self.depths().items()
            if name in self.handlers
        )

    # --- one invocation ---------------------------------------------------------------

    def _receive(self, name: str, *, wait: bool, window_s: int) -> list[dict[str, Any]]:
        """Up to the stage's batch size, gathered within its batching window until the
        queue has had nothing new for ``local_batch_quiet_s``."""
        spec = topology.stage(name)
        url = self.queue_urls[name].queue
        messages: list[dict[str, Any]] = []
        window_end = time.monotonic() + window_s
        quiet_until = window_end
        while len(messages) < spec.batch_size and not self._stop.is_set():
            response = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(BATCH_LIMIT, spec.batch_size - len(messages)),
                WaitTimeSeconds=self.settings.poll_wait_s if wait and not messages else 0,
                VisibilityTimeout=self.settings.local_visibility_timeout_s,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            if batch:
                # The heartbeat lets go of them once their batch is past its function timeout.
                let_go = max(window_end, time.monotonic()) + self.timeouts_s[name]
                self.in_flight.add(url, [m["ReceiptHandle"] for m in batch], let_go)
                messages.extend(batch)
                quiet_until = time.monotonic() + self.settings.local_batch_quiet_s
            elif not messages or time.monotonic() >= min(window_end, quiet_until):
                break
            else:
                time.sleep(0.1)
        return messages

    def _invoke(self, name: str, messages: list[dict[str, Any]]) -> None:
        spec = topology.stage(name)
        url = self.queue_urls[name].queue
        receipts = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
        event = lambda_sqs_event(messages, self._queue_arn(url), self.settings.region)
        timeout_s = self.timeouts_s[name]
        context = LambdaContext(
            function_name=f"{self.settings.queue_prefix}{name}",
            memory_limit_in_mb=spec.memory_mb,
            timeout_s=timeout_s,
            region=self.settings.region,
        )
        stats = self.stats[name]
        stats.invocations += 1
        stats.records += len(messages)
        started = time.monotonic()
        try:
            reasons = self._call(name, _Invocation(self.handlers[name], event, context), receipts)
            for message_id, receipt in receipts.items():
                if message_id in reasons:
                    self._awaiting_retry[message_id] = (url, receipt)
                else:
                    self._awaiting_retry.pop(message_id, None)
            self._delete(url, [r for mid, r in receipts.items() if mid not in reasons])
        finally:
            self.in_flight.remove(url, list(receipts.values()))
        stats.failed_records += len(reasons)
        self._note(name, reasons)
        log.info(
            "stage %s: %d records, %d failed, %.2fs",
            name,
            len(messages),
            len(reasons),
            time.monotonic() - started,
        )

    def _call(self, name: str, invocation: _Invocation, receipts: dict[str, str]) -> dict[str, str]:
        """Run the handler within the stage's timeout; the failed records and why, by id."""
        stats = self.stats[name]
        timeout_s = invocation.context.timeout_s
        invocation.start()
        invocation.join(timeout_s)
        if invocation.is_alive():
            stats.timeouts += 1
            log.error(
                "stage %s: handler ran past its %.1fs timeout; returning %d records",
                name,
                timeout_s,
                len(receipts),
            )
            return dict.fromkeys(receipts, f"Task timed out after {timeout_s:.2f} seconds")
        if invocation.error is not None:  # as on Lambda: the whole batch is retried
            error = invocation.error
            log.error(
                "stage %s: handler raised; retrying %d records",
                name,
                len(receipts),
                exc_info=(type(error), error, error.__traceback__),
            )
            stats.errors += 1
            return dict.fromkeys(receipts, f"{type(error).__name__}: {error}")
        failed = _failed_ids(invocation.response, set(receipts))
        unknown = "reported failed by the handler"
        return {mid: invocation.reasons.get(mid, unknown) for mid in failed}

    def _note(self, name: str, reasons: dict[str, str]) -> None:
        if not reasons:
            return
        try:
            self.journal.note(name, reasons)
        except OSError:
            log.warning("could not note why %d records failed", len(reasons), exc_info=True)

    def _delete(self, url: str, receipts: list[str]) -> None:
        """Delete handled records; one that cannot be deleted is redelivered (stages are
        idempotent), so a failed entry is only logged."""
        for start in range(0, len(receipts), BATCH_LIMIT):
            chunk = receipts[start : start + BATCH_LIMIT]
            response = self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)],
            )
            for failure in response.get("Failed") or []:
                log.info("record on %s not deleted (%s)", url, failure.get("Code"))

    def _queue_arn(self, url: str) -> str:
        if url not in self._arns:
            self._arns[url] = self.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        return self._arns[url]


def _failed_ids(response: Any, message_ids: set[str]) -> set[str]:
    """The message ids a handler's response reports as failed (Lambda's rules)."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        log.error("handler returned %r, not a batch response; failing the batch", type(response))
        return set(message_ids)
    failures = response.get("batchItemFailures") or []
    failed = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if identifier not in message_ids:
            log.error("batch response names unknown record %r; failing the batch", identifier)
            return set(message_ids)
        failed.add(identifier)
    return failed
