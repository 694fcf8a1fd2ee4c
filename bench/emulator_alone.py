"""The emulators measured alone, without the pipeline: restart over a data
directory (after a clean stop and after a kill -9), memory against bytes stored,
and notified puts through a crash.

Used by bench/local_stack.py (items 4-6 of its docstring), which runs them and
records their figures; the helpers reading a process's CPU and RSS from /proc
serve both.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import boto3

from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, EmulatorProcess, free_port, launch

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def boto(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def fill_ministack_dir(data_dir: Path, bucket: str, count: int) -> None:
    """``count`` small objects in MiniStack's on-disk layout (a body file + its sidecar)."""
    root = data_dir / "s3" / "000000000000" / bucket / "images"
    for n in range(count):
        body = f"object {n}".encode().ljust(1024, b".")
        digest = hashlib.sha256(str(n).encode()).hexdigest()
        folder = root / digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        key = f"images/{digest[:2]}/{digest}.jpg"
        (folder / f"{digest}.jpg").write_bytes(body)
        meta = {
            "content_type": "image/jpeg",
            "etag": f'"{hashlib.md5(body).hexdigest()}"',  # noqa: S324 - S3's ETag is MD5
            "last_modified": "2026-01-01T00:00:00.000Z",
            "size": len(body),
            "metadata": {},
            "key": key,
        }
        (folder / f"{digest}.jpg.meta.json").write_text(json.dumps(meta))


def restart(count: int, work: Path) -> dict[str, float]:
    """Start over ``count`` objects: files only (MiniStack's full scan), after a clean stop
    (pixsearch's metadata snapshot), then twice after a SIGKILL (snapshot + journal replay,
    pixsearch/runtime/ministack_object_journal.py): see :func:`restarts_after_kill`."""
    data_dir = work / f"restart-{count}"
    bucket = "restart-bench"
    fill_ministack_dir(data_dir, bucket, count)
    last = hashlib.sha256(str(count - 1).encode()).hexdigest()
    figures: dict[str, float] = {"objects": count}
    for label in ("first_start_full_scan", "restart_after_clean_stop"):
        emulator = launch("ministack", port=free_port(), data_dir=data_dir, log_path=work / "r.log")
        started = time.monotonic()
        emulator.start()
        try:
            s3 = boto("s3", emulator.endpoint_url)
            s3.head_object(Bucket=bucket, Key=f"images/{last[:2]}/{last}.jpg")
            figures[f"{label}_ready_s"] = round(time.monotonic() - started, 2)
            assert emulator.process is not None
            figures[f"{label}_rss_mb"] = round(rss_mb(emulator.process.pid), 1)
        finally:
            emulator.stop()
    return {**figures, **restarts_after_kill(data_dir, bucket, count, work)}


def restarts_after_kill(data_dir: Path, bucket: str, count: int, work: Path) -> dict[str, float]:
    """1,000 puts of 1 KB and 100 deletes over MiniStack's HTTP API, a SIGKILL, a start
    (the journal exactly as that run left it); then a SIGKILL again and a start with that
    journal repeated up to its compaction bound (replaying an entry twice changes nothing),
    the largest journal a crash can leave. Each start is timed to a HEAD of the last put."""
    from pixsearch.runtime.ministack_journal import MIN_COMPACT_BYTES
    from pixsearch.runtime.ministack_object_journal import JOURNAL, SNAPSHOT

    port, puts = free_port(), 1000
    journal = data_dir / "state" / JOURNAL

    def started() -> tuple[EmulatorProcess, float]:
        emulator = launch("ministack", port=port, data_dir=data_dir, log_path=work / "k.log")
        began = time.monotonic()
        emulator.start()
        boto("s3", emulator.endpoint_url).head_object(Bucket=bucket, Key=f"after/{puts - 1:05d}")
        return emulator, round(time.monotonic() - began, 2)

    def killed(emulator: EmulatorProcess) -> None:
        assert emulator.process is not None
        emulator.process.send_signal(signal.SIGKILL)
        emulator.process.wait()

    emulator = launch("ministack", port=port, data_dir=data_dir, log_path=work / "k.log").start()
    s3 = boto("s3", emulator.endpoint_url)
    for n in range(puts):
        s3.put_object(Bucket=bucket, Key=f"after/{n:05d}", Body=os.urandom(1024))
    for n in range(0, puts - 1, 10):
        s3.delete_object(Bucket=bucket, Key=f"after/{n:05d}")
    killed(emulator)
    figures: dict[str, float] = {"journal_after_puts_mb": round(journal.stat().st_size / 2**20, 2)}
    emulator, figures["restart_after_kill_s"] = started()
    killed(emulator)
    run = journal.read_bytes()
    bound = max(MIN_COMPACT_BYTES, (data_dir / "state" / SNAPSHOT).stat().st_size)
    journal.write_bytes(run * max(1, bound // len(run)))
    figures["journal_at_bound_mb"] = round(journal.stat().st_size / 2**20, 2)
    emulator, figures["restart_after_kill_journal_at_bound_s"] = started()
    assert emulator.process is not None
    figures["restart_after_kill_rss_mb"] = round(rss_mb(emulator.process.pid), 1)
    listed = boto("s3", emulator.endpoint_url).list_objects_v2(Bucket=bucket, Prefix="after/")
    figures["after_puts_listed"] = listed["KeyCount"]  # 900 expected
    emulator.stop()
    return figures


def notified_puts(count: int, work: Path) -> dict[str, float]:
    """Puts with S3 -> SQS notifications, then a crash (SIGKILL) and a restart."""
    data_dir, port = work / f"puts-{count}", free_port()

    def start() -> EmulatorProcess:
        return launch("ministack", port=port, data_dir=data_dir, log_path=work / "p.log").start()

    emulator = start()
    assert emulator.process is not None
    s3, sqs = boto("s3", emulator.endpoint_url), boto("sqs", emulator.endpoint_url)
    queue = sqs.create_queue(QueueName="puts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    s3.create_bucket(Bucket="puts-bench")
    s3.put_bucket_notification_configuration(
        Bucket="puts-bench",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    sqs.purge_queue(QueueUrl=queue)  # the s3:TestEvent
    body = os.urandom(50 * 1024)
    cpu_before, started = cpu_s(emulator.process.pid), time.monotonic()
    for n in range(count):
        s3.put_object(Bucket="puts-bench", Key=f"images/{n:06d}.jpg", Body=body)
    elapsed = time.monotonic() - started
    figures: dict[str, float] = {
        "puts": count,
        "puts_per_s": round(count / elapsed, 1),
        "emulator_cpu_ms_per_put": round(
            1000 * (cpu_s(emulator.process.pid) - cpu_before) / count, 2
        ),
    }
    emulator.process.send_signal(signal.SIGKILL)
    emulator.process.wait()
    started = time.monotonic()
    emulator = start()
    try:
        figures["restart_after_kill_s"] = round(time.monotonic() - started, 2)
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        figures["messages_after_kill"] = int(attributes["ApproximateNumberOfMessages"])
    except Exception as error:  # noqa: BLE001 - a lost queue is a result, not a crash
        figures["messages_after_kill"] = 0
        figures["error_after_kill"] = str(error)[:120]
    finally:
        emulator.stop()
    return figures


def memory_vs_bytes(backend: str, work: Path) -> dict[str, float]:
    emulator: EmulatorProcess = launch(
        backend,
        port=free_port(),
        data_dir=work / f"bytes-{backend}" if backend == "ministack" else None,
        log_path=work / f"bytes-{backend}.log",
    ).start()
    try:
        assert emulator.process is not None
        s3 = boto("s3", emulator.endpoint_url)
        s3.create_bucket(Bucket="bytes-bench")
        figures = {"start_rss_mb": round(rss_mb(emulator.process.pid), 1)}
        for label, size in (("1kb", 1024), ("1mb", 1024 * 1024)):
            for n in range(200):
                s3.put_object(Bucket="bytes-bench", Key=f"{label}/{n}", Body=os.urandom(size))
            figures[f"rss_after_200x{label}_mb"] = round(rss_mb(emulator.process.pid), 1)
        return figures
    finally:
        emulator.stop()
