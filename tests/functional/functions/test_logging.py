"""The Lambda entry points log JSON lines that carry the service and the request id."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from pixsearch.runtime.lambda_shapes import LambdaContext
from tests.functional.deploy.sources import load_module

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"


@pytest.mark.parametrize("stage", ["download", "embed", "index"])
def test_a_batch_is_logged_as_json_with_the_request_id(stage: str):
    app = load_module(FUNCTIONS / stage / "app.py", f"pixsearch_function_{stage}")
    (handler,) = logging.getLogger("pixsearch").handlers
    output = io.StringIO()
    handler.setStream(output)
    event = {
        "Records": [
            {"messageId": "test", "receiptHandle": "r1", "body": '{"Event": "s3:TestEvent"}'},
            {"messageId": "garbled", "receiptHandle": "r2", "body": "not json"},
        ]
    }
    context = LambdaContext(f"pixsearch-{stage}", memory_limit_in_mb=512, timeout_s=60)

    response = app.lambda_handler(event, context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "garbled"}]}
    lines = [json.loads(line) for line in output.getvalue().splitlines() if line]
    (summary,) = [line for line in lines if line["message"].startswith("batch of 2 records")]
    assert summary["service"] == f"pixsearch-{stage}"
    assert summary["function_request_id"] == context.aws_request_id
    assert summary["level"] == "INFO"
    assert "not JSON" in summary["failures"]["garbled"]
