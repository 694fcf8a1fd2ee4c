"""MiniStack killed with SIGKILL keeps every acknowledged object, and starts without a scan."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import boto3
from botocore.config import Config

from pixsearch.runtime.ministack_object_journal import JOURNAL
from pixsearch.storage import client
from tests.fixtures.aws import KeptEmulator, notification_keys, receive_all

ACCOUNT = "000000000000"


def listing(bucket: str) -> dict[str, tuple[str, int]]:
    """Every object of ``bucket``: its ETag and size."""
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: (o["ETag"], o["Size"]) for page in pages for o in page.get("Contents", [])}


def etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - S3's ETag is MD5


def restarts(kept: KeptEmulator) -> list[str]:
    return [line for line in kept.log.splitlines() if "restored" in line]


def notify(bucket: str, queue_url: str) -> dict:
    sqs, s3 = client("sqs"), client("s3")
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    configuration = {
        "QueueConfigurations": [
            {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
        ]
    }
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=configuration)
    sqs.purge_queue(QueueUrl=queue_url)  # the s3:TestEvent
    return configuration


def test_a_crash_keeps_every_acknowledged_object_change_and_bucket_setting(
    kept_emulator: KeptEmulator,
):
    s3, sqs = client("s3"), client("sqs")
    s3.create_bucket(Bucket="old")
    s3.put_object(Bucket="old", Key="a.jpg", Body=b"before the stop")
    kept_emulator.server.stop()  # a clean stop: the snapshot
    kept_emulator.start()

    events = sqs.create_queue(QueueName="events")["QueueUrl"]
    s3.create_bucket(Bucket="new")  # created, configured and filled since the snapshot
    configuration = notify("new", events)
    s3.create_bucket(Bucket="gone")
    s3.delete_bucket(Bucket="gone")
    expected = {"a.jpg": (etag(b"before the stop"), 15)}
    for n in range(20):
        body = f"image {n}".encode()
        s3.put_object(
            Bucket="new", Key=f"images/{n:02d}/x y.jpg", Body=body, Metadata={"n": str(n)}
        )
    s3.put_object(Bucket="new", Key="images/05/x y.jpg", Body=b"overwritten", Metadata={"n": "o"})
    s3.delete_object(Bucket="new", Key="images/06/x y.jpg")
    s3.delete_objects(
        Bucket="new",
        Delete={"Objects": [{"Key": "images/07/x y.jpg"}, {"Key": "images/08/x y.jpg"}]},
    )
    s3.copy_object(
        Bucket="old", Key="copied.jpg", CopySource={"Bucket": "new", "Key": "images/09/x y.jpg"}
    )
    expected["copied.jpg"] = (etag(b"image 9"), 7)
    upload = s3.create_multipart_upload(Bucket="old", Key="big.bin")["UploadId"]
    part = s3.upload_part(
        Bucket="old", Key="big.bin", UploadId=upload, PartNumber=1, Body=b"p" * 10
    )
    completed = s3.complete_multipart_upload(
        Bucket="old",
        Key="big.bin",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    expected["big.bin"] = (completed["ETag"], 10)
    s3.delete_object(Bucket="old", Key="a.jpg")
    del expected["a.jpg"]
    new_before = listing("new")

    kept_emulator.crash()
    kept_emulator.start()

    assert listing("old") == expected
    assert listing("new") == new_before and len(new_before) == 17
    assert "images/06/x y.jpg" not in new_before
    overwritten = s3.get_object(Bucket="new", Key="images/05/x y.jpg")
    assert (overwritten["Body"].read(), overwritten["Metadata"]) == (b"overwritten", {"n": "o"})
    assert s3.head_object(Bucket="new", Key="images/11/x y.jpg")["Metadata"] == {"n": "11"}
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == ["new", "old"]
    kept = s3.get_bucket_notification_configuration(Bucket="new")["QueueConfigurations"]
    assert [(c["QueueArn"], c["Events"]) for c in kept] == [
        (c["QueueArn"], c["Events"]) for c in configuration["QueueConfigurations"]
    ]
    s3.put_object(Bucket="new", Key="after the crash.jpg", Body=b"x")
    notified = [f"images/{n:02d}/x y.jpg" for n in range(20)] + ["images/05/x y.jpg"]
    assert sorted(notification_keys(receive_all(events, wait_s=0))) == sorted(
        [*notified, "after the crash.jpg"]
    )
    first, after_stop, after_crash = restarts(kept_emulator)
    assert "by snapshot" in after_stop and "by snapshot + journal" in after_crash
    assert "full scan" not in after_stop + after_crash


def test_objects_written_when_the_process_was_killed_are_kept_whole_or_not_at_all(
    kept_emulator: KeptEmulator,
):
    s3 = boto3.client(  # no retries: the kill ends the writes at once
        "s3",
        endpoint_url=kept_emulator.server.endpoint_url,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    s3.create_bucket(Bucket="busy")
    acknowledged: dict[str, str] = {}
    in_flight: list[str] = []  # the key of the request the kill may have interrupted

    def put_until_killed() -> None:
        for n in range(10_000):
            key, body = f"k/{n:05d}", f"object {n} ".encode() * (1 + n % 50)
            try:
                in_flight[:] = [key]
                acknowledged[key] = s3.put_object(Bucket="busy", Key=key, Body=body)["ETag"]
                if n % 3 == 2:
                    in_flight[:] = [f"k/{n - 1:05d}"]
                    s3.delete_object(Bucket="busy", Key=in_flight[0])
                    del acknowledged[in_flight[0]]
            except Exception:  # noqa: BLE001 - the server was killed mid-request
                return

    writer = threading.Thread(target=put_until_killed)
    writer.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    kept_emulator.crash()
    writer.join()
    kept_emulator.start()

    found = listing("busy")
    assert len(acknowledged) >= 40
    settled = {key: found.get(key, ("", 0))[0] for key in acknowledged if key not in in_flight}
    assert settled == {key: tag for key, tag in acknowledged.items() if key not in in_flight}
    assert set(found) <= {*acknowledged, *in_flight}
    for key, (tag, size) in found.items():  # whole, the interrupted write included
        body = s3.get_object(Bucket="busy", Key=key)["Body"].read()
        assert (etag(body), len(body)) == (tag, size)
    assert "by snapshot + journal" in restarts(kept_emulator)[-1]


def test_the_write_a_crash_interrupted_is_settled_from_its_files_and_replay_is_idempotent(
    kept_emulator: KeptEmulator,
):
    s3 = client("s3")
    s3.create_bucket(Bucket="torn")
    for key in ("replaced", "deleting", "kept"):
        s3.put_object(Bucket="torn", Key=key, Body=b"first")
    kept_emulator.crash()
    files = kept_emulator.data_dir / "s3" / ACCOUNT / "torn"
    journal = kept_emulator.data_dir / "state" / JOURNAL
    replayed = journal.read_bytes()

    # The instant of each crash, as the files and the journal would show it: a body
    # without its sidecar; a body replaced, its sidecar not yet; a deletion half done;
    # a put whose files are whole but whose outcome never reached the journal.
    (files / "bodiless-sidecar-missing").write_bytes(b"new body")
    (files / "replaced").write_bytes(b"second!")
    (files / "deleting").unlink()
    (files / "whole").write_bytes(b"whole body")
    meta = json.loads((files / "kept.meta.json").read_text())
    (files / "whole.meta.json").write_text(
        json.dumps(
            {**meta, "key": "whole", "etag": etag(b"whole body"), "size": 10, "checksums": {}}
        )
    )
    (files / "whole.tmp").write_bytes(b"partial")
    with journal.open("ab") as out:
        for key in ("bodiless-sidecar-missing", "replaced", "deleting", "whole"):
            out.write(json.dumps({"b": [ACCOUNT, "torn"], "k": key, "w": 1}).encode() + b"\n")
        out.write(b'{"b": ["000000000000", "torn"], "k": "kep')  # a torn last line
    kept_emulator.start()

    expected = {"kept": (etag(b"first"), 5), "whole": (etag(b"whole body"), 10)}
    assert listing("torn") == expected
    assert s3.get_object(Bucket="torn", Key="whole")["Body"].read() == b"whole body"
    assert sorted(p.name for p in files.iterdir()) == [
        "kept",
        "kept.meta.json",
        "whole",
        "whole.meta.json",
    ]
    assert "4 settled from their files, 1 torn" in restarts(kept_emulator)[-1]

    # Another crash, as if the journal had been replayed and compacted but not emptied:
    # every change is replayed again over a state that holds it already.
    kept_emulator.crash()
    journal.write_bytes(replayed + journal.read_bytes())
    kept_emulator.start()
    assert listing("torn") == expected


def test_objects_with_tags_are_restored_by_the_full_scan_after_a_crash(
    kept_emulator: KeptEmulator,
):
    s3 = client("s3")
    s3.create_bucket(Bucket="tagged")
    s3.put_object(Bucket="tagged", Key="a", Body=b"a")
    tags = {"TagSet": [{"Key": "kind", "Value": "image"}]}
    s3.put_object_tagging(Bucket="tagged", Key="a", Tagging=tags)
    kept_emulator.crash()
    kept_emulator.start()
    assert s3.get_object_tagging(Bucket="tagged", Key="a")["TagSet"] == tags["TagSet"]
    assert "restored 1 objects by full scan" in restarts(kept_emulator)[-1]
