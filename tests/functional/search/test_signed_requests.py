"""The web app's and the CLI's client against an IAM-protected API: signed with SigV4
from botocore's credentials, checked by a gateway that verifies the signature itself,
answered by the FastAPI app through Mangum."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from botocore.credentials import Credentials
from mangum import Mangum

from pixsearch.config import Settings
from pixsearch.search import command
from pixsearch.search.fastapi_app import create_fastapi_app
from pixsearch.search.service import SearchService
from pixsearch.storage import ObjectStore
from pixsearch.webui.api_client import ApiError, SearchApi
from pixsearch.webui.sigv4 import SigV4
from tests.fixtures.gateway import IamGateway, serve_iam_gateway, sigv4_problem
from tests.fixtures.model import StoredImage


@pytest.fixture
def gateway(settings: Settings, store: ObjectStore) -> Iterator[IamGateway]:
    handler = Mangum(create_fastapi_app(SearchService(settings, store)), lifespan="off")
    secrets = {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}
    yield from serve_iam_gateway(handler, secrets, settings.region)


def test_the_signing_client_gets_through_and_signs_exactly_what_it_should(
    gateway: IamGateway, settings: Settings, indexed: list[StoredImage]
) -> None:
    api = SearchApi.from_settings(gateway.url, settings.model_copy(update={"api_auth": "iam"}))
    assert len(api.search_text("a red square", 3).results) == 3
    found = api.search_upload(indexed[1].data, "q.png", 2)
    assert found.results[0].key == indexed[1].key
    assert api.health().status == "ok"

    assert gateway.refused == []
    assert len(gateway.forwarded) == 3
    for headers in gateway.forwarded:
        authorization = headers["authorization"]
        assert authorization.startswith(
            f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/"
        )
        assert f"/{settings.region}/execute-api/aws4_request, " in authorization
        signed = "content-type;host;x-amz-date" if "content-type" in headers else "host;x-amz-date"
        assert f"SignedHeaders={signed}, " in authorization


def test_unsigned_tampered_and_wrongly_signed_requests_never_reach_the_app(
    gateway: IamGateway, settings: Settings, indexed: list[StoredImage]
) -> None:
    url = f"{gateway.url}/search"
    unsigned = requests.post(url, json={"query_text": "red", "k": 2}, timeout=30)
    assert (unsigned.status_code, unsigned.json()) == (403, {"message": "Forbidden"})

    session = requests.Session()
    signed = SigV4(settings.region)(
        requests.Request("POST", url, json={"query_text": "red", "k": 2}).prepare()
    )
    signed.body = b'{"query_text": "red", "k": 100}'
    signed.headers["Content-Length"] = str(len(signed.body))
    assert session.send(signed, timeout=30).status_code == 403

    key = os.environ["AWS_ACCESS_KEY_ID"]
    for credentials, region in (
        (Credentials(key, "not-the-secret"), settings.region),
        (None, "eu-west-1"),
    ):
        api = SearchApi(gateway.url, auth=SigV4(region, credentials))
        with pytest.raises(ApiError) as refused:
            api.search_text("red", 2)
        assert refused.value.status == 403

    assert gateway.forwarded == []
    assert gateway.refused == [
        "no SigV4 Authorization header",
        "signature does not match",
        "signature does not match",
        f"signed for eu-west-1/execute-api, not {settings.region}/execute-api",
    ]


def test_the_verifier_refuses_another_path_and_a_replayed_old_signature(
    settings: Settings,
) -> None:
    prepared = SigV4(settings.region)(
        requests.Request("GET", "http://127.0.0.1:9/health").prepare()
    )
    headers = {name.lower(): value for name, value in prepared.headers.items()}
    headers["host"] = "127.0.0.1:9"
    secrets = {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}
    region = settings.region
    assert sigv4_problem("GET", "/health", headers, b"", secrets, region) is None
    assert sigv4_problem("GET", "/search", headers, b"", secrets, region) == (
        "signature does not match"
    )
    later = datetime.now(UTC) + timedelta(hours=1)
    assert sigv4_problem("GET", "/health", headers, b"", secrets, region, now=later) == (
        "signature too old or from the future"
    )


def test_the_cli_searches_through_the_protected_api(
    gateway: IamGateway, settings: Settings, indexed: list[StoredImage]
) -> None:
    out, err = io.StringIO(), io.StringIO()
    iam = settings.model_copy(update={"api_auth": "iam"})
    assert command.run(text="red", k=2, settings=iam, api_url=gateway.url, out=out, err=err) == 0
    assert "2 results" in out.getvalue()
    assert len(gateway.forwarded) == 1
    picky = io.StringIO()
    assert (
        command.run(text="red", k=2, min_score=0.9999, settings=iam, api_url=gateway.url, out=picky)
        == 0
    )
    assert "0 results" in picky.getvalue()

    err = io.StringIO()
    assert command.run(text="red", k=2, settings=settings, api_url=gateway.url, err=err) == 2
    assert "403" in err.getvalue() or "Forbidden" in err.getvalue()
