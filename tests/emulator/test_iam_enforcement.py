"""The emulator's IAM enforcement authorizes S3 requests by the IAM action AWS asks for, not by
the API operation's name: a policy written for AWS works in the emulator, and one that lacks a
permission AWS needs is refused there too."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.iam_enforcement import enforcing

BUCKET = "enforced-bucket"
READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
    ],
}


def refused(call: object) -> str:
    with pytest.raises(ClientError) as error:
        call()  # type: ignore[operator]
    return str(error.value.response["Error"]["Code"])


def test_s3_requests_are_authorized_by_their_iam_action(emulator: str) -> None:
    admin = boto3.client("s3", region_name="us-east-1", endpoint_url=emulator)
    admin.create_bucket(Bucket=BUCKET)
    admin.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    version = admin.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")["VersionId"]
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=emulator)
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(READER_POLICY))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    reader = boto3.client(
        "s3", region_name="us-east-1", endpoint_url=emulator,
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
    )  # fmt: skip
    with enforcing():
        reader.head_bucket(Bucket=BUCKET)  # s3:ListBucket
        assert [o["Key"] for o in reader.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["a.txt"]  # s3:ListBucket
        assert reader.get_object(Bucket=BUCKET, Key="a.txt")["Body"].read() == b"a"  # s3:GetObject
        reader.head_object(Bucket=BUCKET, Key="a.txt")  # s3:GetObject
        assert refused(lambda: reader.get_object(Bucket=BUCKET, Key="a.txt", VersionId=version)) == "AccessDenied"
        assert refused(lambda: reader.put_object(Bucket=BUCKET, Key="b.txt", Body=b"b")) == "AccessDenied"
        assert refused(lambda: reader.list_object_versions(Bucket=BUCKET)) == "AccessDenied"  # s3:ListBucketVersions
