"""MiniStack restarts from its metadata snapshot, and after a crash from the files themselves."""

from __future__ import annotations

import signal
from pathlib import Path

import boto3

from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, EmulatorProcess, free_port, launch
from pixsearch.runtime.ministack_fixes import SNAPSHOT


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


def test_a_clean_restart_reads_the_snapshot_and_a_crash_falls_back_to_the_files(tmp_path):
    emulator = started(tmp_path)
    s3 = s3_of(emulator)
    s3.create_bucket(Bucket="kept")
    for key in ("images/a.jpg", "images/b b.jpg", "maps/l/00000.jsonl"):
        s3.put_object(Bucket="kept", Key=key, Body=b"body", Metadata={"source-url": "u"})
    expected = (["images/a.jpg", "images/b b.jpg", "maps/l/00000.jsonl"], {"source-url": "u"})
    emulator.stop()
    assert (tmp_path / "state" / SNAPSHOT).exists()

    emulator = started(tmp_path)
    assert keys_and_metadata(emulator) == expected
    assert not (tmp_path / "state" / SNAPSHOT).exists(), "a snapshot is used once"
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
    log = (tmp_path / "log").read_text()
    assert "restored 3 objects by snapshot" in log
    assert "restored 4 objects by full scan" in log
