"""Signing requests to an IAM-protected search API (AWS SigV4, ``execute-api``).

A deployed API with ``ApiAuth=iam`` (the default) answers only requests signed by
a principal allowed ``execute-api:Invoke``. The credentials are botocore's: the
environment, ``~/.aws``, SSO, or the instance/task role, as the AWS CLI finds them.
"""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from requests import PreparedRequest
from requests.auth import AuthBase

SERVICE = "execute-api"
SIGNED_HEADERS = ("content-type",)
"""Headers signed besides ``host`` and the ``x-amz-*`` ones: those no proxy rewrites."""


class NoCredentials(RuntimeError):
    """No AWS credentials to sign with; the message says where they are looked for."""


class SigV4(AuthBase):
    """``requests`` auth that signs each request for API Gateway with botocore's signer."""

    def __init__(self, region: str, credentials: Credentials | None = None) -> None:
        self.region = region
        self.credentials = credentials or botocore.session.get_session().get_credentials()
        if self.credentials is None:
            raise NoCredentials(
                "PIXSEARCH_API_AUTH=iam signs requests with AWS credentials, and none were "
                "found (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, or a role)"
            )

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        headers = {
            name: value for name, value in request.headers.items() if name.lower() in SIGNED_HEADERS
        }
        body: Any = request.body or b""
        signed = AWSRequest(method=request.method, url=request.url, data=body, headers=headers)
        SigV4Auth(self.credentials.get_frozen_credentials(), SERVICE, self.region).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request
