"""The fault proxy fixture answers as the services would, so botocore treats its faults as real."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from pixsearch.runtime.emulator import EmulatorProcess
from tests.fixtures.faults import FaultProxy


def unretried(service: str, endpoint_url: str):
    config = Config(retries={"mode": "legacy", "max_attempts": 0}, s3={"addressing_style": "path"})
    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1", config=config)


@pytest.mark.parametrize("fault", ["slowdown", "reset", "lost", None])
def test_each_fault_reaches_the_client_as_the_service_would_send_it(
    emulator: EmulatorProcess, fault: str | None
):
    proxy = FaultProxy(emulator.endpoint_url, fault_rate=0.0).start()
    try:
        proxy.draw = lambda: fault  # type: ignore[method-assign]
        s3, sqs = unretried("s3", proxy.endpoint_url), unretried("sqs", proxy.endpoint_url)
        if fault == "slowdown":
            with pytest.raises(ClientError) as s3_error:
                s3.list_buckets()
            with pytest.raises(ClientError) as sqs_error:
                sqs.list_queues()
            assert s3_error.value.response["Error"]["Code"] == "SlowDown"
            assert sqs_error.value.response["Error"]["Code"] == "ServiceUnavailable"
            assert s3_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        elif fault in ("reset", "lost"):
            with pytest.raises(ConnectionClosedError):
                sqs.create_queue(QueueName=f"proxy-{fault}")
            created = unretried("sqs", emulator.endpoint_url).list_queues(
                QueueNamePrefix=f"proxy-{fault}"
            )
            assert bool(created.get("QueueUrls")) == (fault == "lost")  # the work was done
        else:
            assert "Buckets" in s3.list_buckets()
    finally:
        proxy.stop()


def test_faults_fall_on_the_set_fraction_with_a_seed():
    proxies = [FaultProxy("http://127.0.0.1:9", 0.3, seed=7) for _ in range(2)]
    try:
        draws = [proxies[0].draw() for _ in range(2000)]
        assert draws == [proxies[1].draw() for _ in range(2000)]
    finally:
        for proxy in proxies:
            proxy.stop()
    assert 0.27 < sum(d is not None for d in draws) / len(draws) < 0.33
    assert {d for d in draws if d} == {"slowdown", "reset", "lost"}
