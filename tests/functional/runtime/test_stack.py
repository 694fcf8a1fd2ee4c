"""``pixsearch up`` as a user runs it: a real process tree, stopped with Ctrl-C, restarted."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port
from tests.fixtures.aws import notification_keys
from tests.fixtures.stack import RunningStack


def stack_env(data_dir: Path, moto_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIXSEARCH_"))}
    env.update(
        PIXSEARCH_DATA_DIR=str(data_dir),
        PIXSEARCH_MOTO_PORT=str(moto_port),
        PIXSEARCH_BUCKET="stack-test",
        PIXSEARCH_LOCAL_VISIBILITY_TIMEOUT_S="2",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield stack_env(tmp_path / "data", free_port())


def client_options(env: dict[str, str]) -> dict[str, str]:
    return {
        "endpoint_url": f"http://127.0.0.1:{env['PIXSEARCH_MOTO_PORT']}",
        "region_name": "us-east-1",
        "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def s3_for(env: dict[str, str]):
    return boto3.client("s3", **client_options(env))


def status_json(env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "pixsearch.cli", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def waiting(env: dict[str, str], queue: str) -> list[dict]:
    sqs = boto3.client("sqs", **client_options(env))
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )


def waiting_keys(env: dict[str, str], queue: str) -> list[str]:
    """The object keys the notifications waiting on ``queue`` name."""
    return notification_keys(waiting(env, queue))


def test_data_survives_a_restart_and_ctrl_c_leaves_nothing_running(env):
    stack = RunningStack(env, "--stages", "download")
    s3 = s3_for(env)
    s3.put_object(Bucket="stack-test", Key="images/ab/pending.jpg", Body=b"not handled here")
    s3.put_object(
        Bucket="stack-test",
        Key="maps/kept/00000.jsonl",
        Body=b'{"url": "u"}\n',
        ContentType="application/x-ndjson",
        Metadata={"source-url": "http://example.com/a b"},
    )
    assert status_json(env)["objects"]["maps"] == 1
    output = stack.stop()
    assert stack.process.returncode == 0, output
    with pytest.raises(Exception):  # noqa: B017 - any connection error: moto is gone
        s3_for(env).list_buckets()

    stack = RunningStack(env, "--stages", "download")
    try:
        kept = s3_for(env).get_object(Bucket="stack-test", Key="maps/kept/00000.jsonl")
        assert kept["Body"].read() == b'{"url": "u"}\n'
        assert kept["ContentType"] == "application/x-ndjson"
        assert kept["Metadata"] == {"source-url": "http://example.com/a b"}
        state = status_json(env)
        assert state["stages"]["download"]["dead_letters"] == 0
        # The embed message waiting at stop is still there, once: nothing is sent again.
        assert waiting_keys(env, "pixsearch-embed") == ["images/ab/pending.jpg"]
    finally:
        stack.stop()


@pytest.mark.parametrize("whole_group", [False, True], ids=["up-alone", "with-its-children"])
def test_a_killed_stack_keeps_its_pending_messages(env, whole_group: bool):
    stack = RunningStack(env, "--stages", "download")
    s3_for(env).put_object(Bucket="stack-test", Key="images/ab/pending.jpg", Body=b"not here")
    stack.kill(whole_group=whole_group)
    deadline = time.monotonic() + 30
    while port_answers(int(env["PIXSEARCH_MOTO_PORT"])):  # alone, it stops by itself
        assert time.monotonic() < deadline, "the emulator outlived the killed stack"
        time.sleep(0.2)

    stack = RunningStack(env, "--stages", "download")
    try:
        assert waiting_keys(env, "pixsearch-embed") == ["images/ab/pending.jpg"]
    finally:
        stack.stop()


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def write_moto_mirror(data_dir: Path, objects: dict[str, bytes], pending: dict[str, list]) -> None:
    """The data directory an older release (moto server + a bucket mirror) left behind."""
    (data_dir / "objects").mkdir(parents=True)
    for key, body in objects.items():
        (data_dir / "objects" / hashlib.sha256(key.encode()).hexdigest()).write_bytes(body)
    catalogue = {
        key: {
            "etag": "e",
            "content_type": "image/jpeg",
            "metadata": {"source-url": f"http://e/{key}"},
        }
        for key in objects
    }
    (data_dir / "objects.json").write_text(json.dumps(catalogue))
    (data_dir / "pending-messages.json").write_text(json.dumps(pending))


def test_the_data_of_an_older_release_is_imported_once(env):
    data_dir = Path(env["PIXSEARCH_DATA_DIR"])
    objects = {"images/ab/old one.jpg": b"jpeg", "embeddings/m/s.npy": b"npy"}
    saved = {"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "images/cd/w.jpg"}}}]}
    write_moto_mirror(data_dir, objects, {"embed": [json.dumps(saved)], "index-dlq": ["odd"]})

    stack = RunningStack(env, "--stages", "download")
    try:
        assert "imported 2 objects and 2 pending messages" in "".join(stack.output)
        s3 = s3_for(env)
        for key, body in objects.items():
            kept = s3.get_object(Bucket="stack-test", Key=key)
            assert (kept["Body"].read(), kept["ContentType"]) == (body, "image/jpeg")
            assert kept["Metadata"] == {"source-url": f"http://e/{key}"}
        # The saved message is back; the imported image, embedded long ago, sent none.
        assert waiting_keys(env, "pixsearch-embed") == ["images/cd/w.jpg"]
        assert [m["Body"] for m in waiting(env, "pixsearch-index-dlq")] == ["odd"]
    finally:
        stack.stop()
    assert not (data_dir / "objects.json").exists()
    assert sorted(p.name for p in (data_dir / "moto-mirror.imported").iterdir()) == [
        "objects",
        "objects.json",
        "pending-messages.json",
    ]

    stack = RunningStack(env, "--stages", "download")
    try:
        assert "imported" not in "".join(stack.output)
        assert s3_for(env).get_object(Bucket="stack-test", Key="embeddings/m/s.npy")
    finally:
        stack.stop()


def test_status_without_a_stack_says_what_to_do(env):
    result = subprocess.run(
        [sys.executable, "-m", "pixsearch.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "pixsearch up" in result.stderr


def test_stages_choose_which_handlers_this_process_runs(env):
    stack = RunningStack(env, "--stages", "download")
    output = stack.stop()
    assert "download (not handled here: embed, index)" in output


def test_an_unknown_stage_is_refused_before_anything_starts(env):
    result = subprocess.run(
        [sys.executable, "-m", "pixsearch.cli", "up", "--stages", "download,resize"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "unknown stage(s) resize" in result.stderr


def test_an_external_endpoint_gets_what_is_missing_and_nothing_else_changes(
    emulator, settings, tmp_path
):
    """Only AWS_ENDPOINT_URL_S3/_SQS set: no local emulator starts, existing config stays."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=settings.bucket)
    theirs = sqs.create_queue(
        QueueName=f"{settings.queue_prefix}download", Attributes={"VisibilityTimeout": "123"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=theirs, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    their_rules = {
        "QueueConfigurations": [
            {"Id": "theirs", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]},
        ]
    }
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket, NotificationConfiguration=their_rules
    )
    env = stack_env(tmp_path / "external", free_port())
    env.update(
        {k: v for k, v in os.environ.items() if k in LOCAL_CREDENTIALS},
        AWS_ENDPOINT_URL_S3=emulator.endpoint_url,
        AWS_ENDPOINT_URL_SQS=emulator.endpoint_url,
        PIXSEARCH_BUCKET=settings.bucket,
        PIXSEARCH_QUEUE_PREFIX=settings.queue_prefix,
    )

    output = RunningStack(env).stop()

    assert "object store (AWS_ENDPOINT_URL_S3)" in output
    assert emulator.endpoint_url in output
    assert not list((tmp_path / "external").glob("*.log")), "a local emulator was started"
    attributes = sqs.get_queue_attributes(QueueUrl=theirs, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "123"
    assert "RedrivePolicy" not in attributes
    rules = s3.get_bucket_notification_configuration(Bucket=settings.bucket)
    assert [rule["Id"] for rule in rules["QueueConfigurations"]] == ["theirs"]
    created = sqs.get_queue_url(QueueName=f"{settings.queue_prefix}embed-dlq")["QueueUrl"]
    assert created
