"""The pipeline view lists dead letters with their first failure and sends them back."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from pixsearch import topology
from pixsearch.config import Settings
from pixsearch.runtime.failures import FailureJournal
from pixsearch.storage import ObjectStore, client
from tests.fixtures.aws import receive_all


def test_dead_letters_are_shown_and_sent_back(
    app: AppTest, settings: Settings, queues: dict[str, topology.QueueUrls], store: ObjectStore
):
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": store.bucket}, "object": {"key": "images/aa/x.png"}},
                }
            ]
        }
    )
    sent = client("sqs").send_message(QueueUrl=queues["embed"].dlq, MessageBody=body)
    FailureJournal(settings.data_dir).note("embed", {sent["MessageId"]: "OSError: disk full"})

    app.run()
    assert not app.exception
    assert any("1 message(s) in dead-letter queues" in w.value for w in app.tabs[1].warning)
    app.button(key="show_dead_letters").click().run()
    listed = app.dataframe[-1].value
    assert list(listed["object key(s)"]) == ["images/aa/x.png"]
    assert list(listed["first failure"]) == ["OSError: disk full"]

    app.button(key="redrive_dead_letters").click().run()
    assert not app.exception
    assert "embed: sent 1 message(s) back" in [s.value for s in app.tabs[1].success][-1]
    assert receive_all(queues["embed"].dlq, wait_s=0) == []
    assert [m["Body"] for m in receive_all(queues["embed"].queue) if "x.png" in m["Body"]] == [body]
