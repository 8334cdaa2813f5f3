"""Small Lambda functions for the emulator's tests: a zip built from handler source, deployed
through the Lambda API of the emulator under test."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from typing import Any

import boto3

REGION = "eu-west-1"
LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})  # fmt: skip


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, textwrap.dedent(text))
    return buffer.getvalue()


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def deploy(endpoint: str, name: str, files: dict[str, str], handler: str = "app.handler", **config: Any) -> str:
    """Create the function (and a role for it); returns its ARN."""
    iam = client(endpoint, "iam")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    created = client(endpoint, "lambda").create_function(
        FunctionName=name, Runtime="python3.14", Role=role, Handler=handler, Code={"ZipFile": zip_of(files)},
        **config,
    )  # fmt: skip
    return str(created["FunctionArn"])


def invoke(endpoint: str, name: str, event: Any = None, **extra: Any) -> tuple[dict[str, Any], Any]:
    """The Invoke response and its decoded payload."""
    response = client(endpoint, "lambda").invoke(FunctionName=name, Payload=json.dumps(event or {}), **extra)
    body = response["Payload"].read()
    return response, json.loads(body) if body else None
