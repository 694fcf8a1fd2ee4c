"""MiniStack restarts from its metadata snapshot, scanning the files only where there is none."""

from __future__ import annotations

import signal
from pathlib import Path

import boto3

from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, EmulatorProcess, free_port, launch
from pixsearch.runtime.ministack_object_journal import SNAPSHOT


def started(data_dir: Path) -> EmulatorProcess:
    return launch(
        "ministack", port=free_port(), data_dir=data_dir, log_path=data_dir / "log"
    ).start()


def s3_of(emulator: EmulatorProcess):
    return boto3.client(
        "s3",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def keys_and_metadata(emulator: EmulatorProcess) -> tuple[list[str], dict[str, str]]:
    s3 = s3_of(emulator)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="kept").get("Contents", [])]
    return keys, s3.head_object(Bucket="kept", Key="images/b b.jpg")["Metadata"]


def test_a_restart_reads_the_snapshot_and_only_a_directory_without_one_is_scanned(tmp_path):
    emulator = started(tmp_path)
    s3 = s3_of(emulator)
    s3.create_bucket(Bucket="kept")
    for key in ("images/a.jpg", "images/b b.jpg", "maps/l/00000.jsonl"):
        s3.put_object(Bucket="kept", Key=key, Body=b"body", Metadata={"source-url": "u"})
    expected = (["images/a.jpg", "images/b b.jpg", "maps/l/00000.jsonl"], {"source-url": "u"})
    emulator.stop()

    emulator = started(tmp_path)
    assert keys_and_metadata(emulator) == expected
    emulator.stop()
    # The directory as a pixsearch without the snapshot left it: the object files only.
    (tmp_path / "state" / SNAPSHOT).unlink()
    emulator = started(tmp_path)
    assert keys_and_metadata(emulator) == expected
    assert (tmp_path / "state" / SNAPSHOT).exists(), "the scan's result is kept"
    s3_of(emulator).put_object(Bucket="kept", Key="images/c.jpg", Body=b"after")
    assert emulator.process is not None
    emulator.process.send_signal(signal.SIGKILL)
    emulator.process.wait()

    emulator = started(tmp_path)
    try:
        keys, metadata = keys_and_metadata(emulator)
        assert keys == sorted([*expected[0], "images/c.jpg"]) and metadata == expected[1]
    finally:
        emulator.stop()
    restarts = [line for line in (tmp_path / "log").read_text().splitlines() if "restored" in line]
    assert [line.split(" in ")[0].split(": ")[1] for line in restarts[1:]] == [
        "restored 3 objects by snapshot",
        "restored 3 objects by full scan",
        "restored 4 objects by snapshot + journal (1 change(s) replayed, 0 settled from "
        "their files, 0 torn)",
    ]
