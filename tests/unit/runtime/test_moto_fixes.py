"""The moto fixes match the installed moto, and the lazy attributes equal moto's own."""

from __future__ import annotations

import json

import moto
from moto.sqs.models import Message, Queue, sqs_backends

from pixsearch.runtime import moto_fixes


def test_the_installed_moto_is_the_one_the_fixes_were_written_for():
    assert moto.__version__ == moto_fixes.MOTO_VERSION
    assert moto_fixes.mismatches() == [], (
        "moto changed under the fixes: re-read these functions, adapt pixsearch/runtime/"
        "moto_fixes.py, then update FINGERPRINTS"
    )


def test_lazy_attributes_equal_what_moto_computes():
    backend = sqs_backends["123456789012"]["us-east-1"]
    dlq = backend.create_queue("lazy-dlq")
    queue = backend.create_queue(
        "lazy",
        VisibilityTimeout="7",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq.queue_arn, "maxReceiveCount": 5}),
    )
    for number in range(3):
        message = Message(f"id-{number}", f"body-{number}")
        message.mark_sent()
        queue._messages.append(message)
    queue._messages[0].mark_received(visibility_timeout=60)
    upstream = Queue.attributes.fget(queue)  # type: ignore[attr-defined]

    lazy = moto_fixes._LazyAttributes(queue)

    assert dict(lazy) == upstream
    assert dict(moto_fixes._LazyAttributes(dlq)) == Queue.attributes.fget(dlq)  # type: ignore[attr-defined]
    assert lazy["ApproximateNumberOfMessages"] == 2
    assert lazy["ApproximateNumberOfMessagesNotVisible"] == 1
    assert "ContentBasedDeduplication" not in lazy
