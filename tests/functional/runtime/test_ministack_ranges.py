"""MiniStack answers ranged GETs of objects on disk with exactly the bytes asked for."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, free_port, launch

BODY = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable mod 256


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ministack")
    with launch("ministack", port=free_port(), data_dir=data_dir, log_path=data_dir / "log") as e:
        client = boto3.client(
            "s3",
            endpoint_url=e.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket="ranges")
        client.put_object(Bucket="ranges", Key="data/file.lance", Body=BODY)
        yield client


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=300-4399", 300, 4399),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-17", 10223, 10239),
        ("bytes=10200-99999", 10200, 10239),
    ],
)
def test_a_ranged_get_returns_that_range_and_says_so(s3, header, start, end):
    answer = s3.get_object(Bucket="ranges", Key="data/file.lance", Range=header)
    assert answer["Body"].read() == BODY[start : end + 1]
    assert answer["ContentRange"] == f"bytes {start}-{end}/{len(BODY)}"
    assert answer["ContentLength"] == end - start + 1


def test_a_whole_get_and_an_unsatisfiable_range_are_unchanged(s3):
    assert s3.get_object(Bucket="ranges", Key="data/file.lance")["Body"].read() == BODY
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="ranges", Key="data/file.lance", Range="bytes=20000-20010")
    assert refused.value.response["Error"]["Code"] == "InvalidRange"
