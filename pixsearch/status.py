"""``pixsearch status``: queue depths per stage and object counts per prefix."""

from __future__ import annotations

from typing import Any

from pixsearch import layout, topology
from pixsearch.config import Settings
from pixsearch.storage import ObjectStore, client

_DEPTH = "ApproximateNumberOfMessages"
_IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"


def queue_depths(settings: Settings) -> dict[str, dict[str, int]]:
    """Queued, in-flight and dead-lettered messages per stage (cheap: a few SQS calls)."""
    sqs = client("sqs", settings.region)
    stages: dict[str, dict[str, int]] = {}
    for name, urls in topology.queue_urls(sqs, settings).items():
        queue = _attributes(sqs, urls.queue)
        dlq = _attributes(sqs, urls.dlq)
        stages[name] = {
            "queued": queue[_DEPTH],
            "in_flight": queue[_IN_FLIGHT],
            "dead_letters": dlq[_DEPTH] + dlq[_IN_FLIGHT],
        }
    return stages


def collect(settings: Settings) -> dict[str, Any]:
    """A JSON-ready picture of the pipeline's state, with object counts per prefix."""
    store = ObjectStore(settings.bucket, client("s3", settings.region))
    objects = {prefix.rstrip("/"): store.count(prefix) for prefix in layout.PREFIXES}
    return {"bucket": settings.bucket, "stages": queue_depths(settings), "objects": objects}


def render(status: dict[str, Any]) -> str:
    """The status as a small human-readable table."""
    lines = [f"bucket s3://{status['bucket']}", ""]
    lines.append(f"{'stage':<10} {'queued':>8} {'in flight':>10} {'DLQ':>6}")
    for name, depths in status["stages"].items():
        lines.append(
            f"{name:<10} {depths['queued']:>8} {depths['in_flight']:>10} "
            f"{depths['dead_letters']:>6}"
        )
    lines.append("")
    lines.append(f"{'prefix':<12} {'objects':>8}")
    for prefix, count in status["objects"].items():
        lines.append(f"{prefix + '/':<12} {count:>8}")
    return "\n".join(lines)


def _attributes(sqs: Any, url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[_DEPTH, _IN_FLIGHT])
    return {name: int(value) for name, value in attributes["Attributes"].items()}
