"""The deployed topology, declared once: stages, their queues, filters and limits.

The local runtime applies it to moto (or any endpoint) with :func:`ensure`; the
SAM template and the LocalStack init script state the same values and a test
checks that they agree with :data:`STAGES`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pixsearch import layout
from pixsearch.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trigger:
    """An S3 notification rule feeding a stage's queue."""

    prefix: str
    events: tuple[str, ...]
    suffix: str = ""


@dataclass(frozen=True)
class Stage:
    name: str
    handler: str  # "module:function" of the Lambda handler in the library
    triggers: tuple[Trigger, ...]
    function_timeout_s: int
    batch_size: int
    batching_window_s: int = 0
    max_concurrency: int = 2
    max_receive_count: int = 5  # AWS: at least 5 for SQS event sources (lost receives count)
    memory_mb: int = 1024

    @property
    def visibility_timeout_s(self) -> int:
        """AWS's advice for an SQS event source: at least six times the function timeout."""
        return 6 * self.function_timeout_s


CREATED = ("s3:ObjectCreated:*",)
REMOVED = ("s3:ObjectRemoved:*",)

STAGES: tuple[Stage, ...] = (
    Stage(
        name="download",
        handler="pixsearch.download.handler:lambda_handler",
        triggers=(Trigger(layout.URLS, CREATED),),
        function_timeout_s=900,
        batch_size=1,
        max_concurrency=4,
        memory_mb=1024,
    ),
    Stage(
        name="embed",
        handler="pixsearch.embed.handler:lambda_handler",
        triggers=(Trigger(layout.IMAGES, CREATED),),
        function_timeout_s=900,
        batch_size=64,
        batching_window_s=5,
        max_concurrency=2,
        memory_mb=3008,
    ),
    Stage(
        name="index",
        handler="pixsearch.index.handler:lambda_handler",
        triggers=(
            Trigger(layout.EMBEDDINGS, CREATED, suffix=layout.SHARD_SUFFIX),
            Trigger(layout.IMAGES, REMOVED),
        ),
        function_timeout_s=300,
        batch_size=100,
        batching_window_s=5,
        max_concurrency=1,
        memory_mb=3008,
    ),
)


def stage(name: str) -> Stage:
    for candidate in STAGES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown stage {name!r}; stages are {[s.name for s in STAGES]}")


def queue_name(settings: Settings, stage_name: str) -> str:
    return f"{settings.queue_prefix}{stage_name}"


def dlq_name(settings: Settings, stage_name: str) -> str:
    return f"{settings.queue_prefix}{stage_name}-dlq"


@dataclass(frozen=True)
class QueueUrls:
    queue: str
    dlq: str


def queue_urls(sqs: Any, settings: Settings) -> dict[str, QueueUrls]:
    """The URLs of every stage's queue and DLQ (they must exist)."""
    return {
        s.name: QueueUrls(
            queue=sqs.get_queue_url(QueueName=queue_name(settings, s.name))["QueueUrl"],
            dlq=sqs.get_queue_url(QueueName=dlq_name(settings, s.name))["QueueUrl"],
        )
        for s in STAGES
    }


def ensure(
    s3: Any,
    sqs: Any,
    settings: Settings,
    *,
    visibility_timeout_s: int | None = None,
    notifications: bool = True,
    reconfigure: bool = True,
) -> dict[str, QueueUrls]:
    """Create bucket, queues, DLQs and notifications if missing (idempotent).

    ``visibility_timeout_s`` overrides the deployed value for local runs, where
    the dispatcher extends visibility while a batch is in flight instead.
    ``notifications=False`` leaves the bucket silent. ``reconfigure=False`` is for
    someone else's stack (an external endpoint): what exists is left exactly as
    it is, only what is missing is created.
    """
    _ensure_bucket(s3, settings)
    urls: dict[str, QueueUrls] = {}
    for spec in STAGES:
        dlq_url = _existing_queue(sqs, dlq_name(settings, spec.name))
        if dlq_url is None:
            dlq_url = sqs.create_queue(QueueName=dlq_name(settings, spec.name))["QueueUrl"]
        timeout = visibility_timeout_s or spec.visibility_timeout_s
        attributes = {
            "VisibilityTimeout": str(timeout),
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": _queue_arn(sqs, dlq_url),
                    "maxReceiveCount": str(spec.max_receive_count),
                }
            ),
        }
        name = queue_name(settings, spec.name)
        url = _existing_queue(sqs, name)
        if url is None:
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        elif reconfigure:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        urls[spec.name] = QueueUrls(queue=url, dlq=dlq_url)
    if notifications:
        current = s3.get_bucket_notification_configuration(Bucket=settings.bucket)
        wanted = notification_configuration(
            settings, {name: _queue_arn(sqs, pair.queue) for name, pair in urls.items()}
        )
        if _routes(current) == _routes(wanted):
            pass  # as wanted already: putting it again would only send another s3:TestEvent
        elif reconfigure or not any(current.get(kind) for kind in _NOTIFICATION_KINDS):
            s3.put_bucket_notification_configuration(
                Bucket=settings.bucket, NotificationConfiguration=wanted
            )
        else:
            log.warning(
                "bucket %s already has event notifications: left as they are", settings.bucket
            )
    return urls


_NOTIFICATION_KINDS = (
    "QueueConfigurations",
    "TopicConfigurations",
    "LambdaFunctionConfigurations",
    "EventBridgeConfiguration",
)


def _routes(config: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...], frozenset]]:
    """What a notification configuration routes where, whatever its ids and spelling."""
    return {
        (
            rule.get("Id", ""),
            rule["QueueArn"],
            tuple(sorted(rule["Events"])),
            frozenset(
                (item["Name"].lower(), item["Value"])
                for item in rule.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            ),
        )
        for rule in config.get("QueueConfigurations", [])
    } | {(kind, "", (), frozenset()) for kind in _NOTIFICATION_KINDS[1:] if config.get(kind)}


def _existing_queue(sqs: Any, name: str) -> str | None:
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return None


def notification_configuration(settings: Settings, queue_arns: dict[str, str]) -> dict[str, Any]:
    """The bucket notification configuration that routes object events to stage queues."""
    configs = []
    for spec in STAGES:
        for position, trigger in enumerate(spec.triggers):
            rules = [{"Name": "prefix", "Value": trigger.prefix}]
            if trigger.suffix:
                rules.append({"Name": "suffix", "Value": trigger.suffix})
            configs.append(
                {
                    "Id": f"{spec.name}-{position}",
                    "QueueArn": queue_arns[spec.name],
                    "Events": list(trigger.events),
                    "Filter": {"Key": {"FilterRules": rules}},
                }
            )
    return {"QueueConfigurations": configs}


def _ensure_bucket(s3: Any, settings: Settings) -> None:
    try:
        s3.head_bucket(Bucket=settings.bucket)
        return
    except s3.exceptions.ClientError:
        pass
    params: dict[str, Any] = {"Bucket": settings.bucket}
    if settings.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
    s3.create_bucket(**params)
    log.info("created bucket %s", settings.bucket)


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
