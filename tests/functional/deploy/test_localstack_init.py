"""localstack/ready.d: states the topology, and really creates it when run with the AWS CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from pixsearch import topology
from pixsearch.config import Settings
from pixsearch.storage import client
from tests.fixtures.aws import notification_keys
from tests.functional.deploy.sources import (
    COMPOSE,
    INIT_SCRIPT,
    init_script_notifications,
    init_script_stages,
    resource,
    run_init_script,
)


def test_script_is_an_executable_shell_script() -> None:
    """LocalStack runs only executable ``.sh`` files with a shebang."""
    assert INIT_SCRIPT.suffix == ".sh"
    assert INIT_SCRIPT.read_text().startswith("#!")
    assert INIT_SCRIPT.stat().st_mode & stat.S_IXUSR


def test_stages_state_topology_and_template_values() -> None:
    expected = {
        spec.name: (spec.visibility_timeout_s, spec.max_receive_count) for spec in topology.STAGES
    }
    assert init_script_stages() == expected
    for name, (visibility, max_receive) in init_script_stages().items():
        queue = resource(f"{name.capitalize()}Queue")["Properties"]
        assert (queue["VisibilityTimeout"], queue["RedrivePolicy"]["maxReceiveCount"]) == (
            visibility,
            max_receive,
        )


def test_queue_names_follow_topology() -> None:
    """The script names queues as ``topology`` does, with its shell variables as the parts."""
    script_settings = Settings(queue_prefix="${PREFIX}")
    text = INIT_SCRIPT.read_text()
    assert f'--queue-name "{topology.queue_name(script_settings, "${name}")}"' in text
    assert f'--queue-name "{topology.dlq_name(script_settings, "${name}")}"' in text


def test_notifications_are_what_topology_applies() -> None:
    arns = {spec.name: f"queue:{spec.name}" for spec in topology.STAGES}
    assert init_script_notifications() == topology.notification_configuration(Settings(), arns)


def test_defaults_match_settings_and_compose() -> None:
    text = INIT_SCRIPT.read_text()
    defaults = Settings()
    assert f'BUCKET="${{PIXSEARCH_BUCKET:-{defaults.bucket}}}"' in text
    assert f'PREFIX="${{PIXSEARCH_QUEUE_PREFIX:-{defaults.queue_prefix}}}"' in text
    assert str(INIT_SCRIPT.parent.relative_to(COMPOSE.parent)) in COMPOSE.read_text()


def test_script_creates_a_working_topology(settings: Settings, tmp_path: Path) -> None:
    """Run against moto server: bucket, queues, DLQs and a notification that really arrives."""
    run_init_script(settings.bucket, settings.queue_prefix, tmp_path)

    s3, sqs = client("s3"), client("sqs")
    urls = topology.queue_urls(sqs, settings)
    arns = {}
    for spec in topology.STAGES:
        attributes = sqs.get_queue_attributes(
            QueueUrl=urls[spec.name].queue, AttributeNames=["All"]
        )["Attributes"]
        dlq_arn = sqs.get_queue_attributes(
            QueueUrl=urls[spec.name].dlq, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(attributes["VisibilityTimeout"]) == spec.visibility_timeout_s
        assert redrive["deadLetterTargetArn"] == dlq_arn
        assert int(redrive["maxReceiveCount"]) == spec.max_receive_count
        arns[spec.name] = attributes["QueueArn"]

    configuration = s3.get_bucket_notification_configuration(Bucket=settings.bucket)
    configuration.pop("ResponseMetadata")
    assert configuration == topology.notification_configuration(settings, arns)

    s3.put_object(Bucket=settings.bucket, Key="urls/init-check.txt", Body=b"")
    assert _object_keys_notified(sqs, urls["download"].queue) == ["urls/init-check.txt"]


def _object_keys_notified(sqs: object, queue_url: str) -> list[str]:
    """The object keys of the S3 notifications on a queue (``s3:TestEvent`` skipped)."""
    keys: list[str] = []
    while received := sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages"):
        keys += notification_keys(received)
    return keys
