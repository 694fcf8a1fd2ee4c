"""The topology declaration is self-consistent."""

from __future__ import annotations

from pixsearch import layout, topology
from pixsearch.config import Settings


def test_no_stage_can_trigger_itself():
    writes = {
        "download": (layout.IMAGES, layout.MAPS),
        "embed": (layout.EMBEDDINGS,),
        "index": (layout.INDEX,),
    }
    for spec in topology.STAGES:
        for trigger in spec.triggers:
            if "s3:ObjectCreated:*" in trigger.events:
                assert not any(trigger.prefix.startswith(p) for p in writes[spec.name])


def test_visibility_timeout_is_six_function_timeouts_and_index_runs_alone():
    for spec in topology.STAGES:
        assert spec.visibility_timeout_s == 6 * spec.function_timeout_s
        # AWS's guidance for SQS event sources: receives whose response is lost still count.
        assert spec.max_receive_count >= 5
    assert topology.stage("index").max_concurrency == 1


def filters(rule: dict) -> list[dict]:
    return rule["Filter"]["Key"]["FilterRules"]


def test_notification_configuration_routes_each_trigger():
    settings = Settings(queue_prefix="p-")
    arns = {spec.name: f"arn:aws:sqs:us-east-1:1:p-{spec.name}" for spec in topology.STAGES}
    config = topology.notification_configuration(settings, arns)["QueueConfigurations"]
    routes = {
        (rule["QueueArn"].rsplit(":", 1)[1], tuple(f["Value"] for f in filters(rule)))
        for rule in config
    }
    assert routes == {
        ("p-download", ("urls/",)),
        ("p-embed", ("images/",)),
        ("p-index", ("embeddings/", ".npy")),
        ("p-index", ("images/",)),
    }
    assert topology.queue_name(settings, "embed") == "p-embed"
    assert topology.dlq_name(settings, "embed") == "p-embed-dlq"
