"""Uploads to the artifacts bucket: the bucket's own encryption applies, and a missing key is
absent whether S3 says 404 or, to a caller without s3:ListBucket, 403."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from rollout import artifacts

BUCKET, KEY = "cc-websocket-rollout-artifactsbucket-1a2b", "templates/compute-0123456789abcdef0123.yaml"


def stubbed() -> tuple[Any, Stubber]:
    s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return s3, Stubber(s3)


@pytest.mark.parametrize(("status", "code"), [(404, "404"), (403, "403")])
def test_a_missing_key_is_uploaded_with_the_buckets_default_encryption(status: int, code: str) -> None:
    s3, stub = stubbed()
    stub.add_client_error("head_object", service_error_code=code, http_status_code=status,
                          expected_params={"Bucket": BUCKET, "Key": KEY})  # fmt: skip
    stub.add_response("put_object", {}, {"Bucket": BUCKET, "Key": KEY, "Body": b"body"})  # no ServerSideEncryption
    with stub:
        assert artifacts.upload_if_absent(s3, BUCKET, KEY, b"body") is True
    stub.assert_no_pending_responses()


def test_another_error_is_not_read_as_absent() -> None:
    s3, stub = stubbed()
    stub.add_client_error("head_object", service_error_code="500", http_status_code=500)
    with stub, pytest.raises(Exception, match="500"):
        artifacts.exists(s3, BUCKET, KEY)
