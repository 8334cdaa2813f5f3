"""Upload the handlers zip and the templates to the artifacts bucket, each under a key that
carries its content hash; an object already there is not uploaded again."""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError


def template_key(stem: str, text: str) -> str:
    return f"templates/{stem}-{hashlib.sha256(text.encode()).hexdigest()[:20]}.yaml"


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def upload_if_absent(s3: Any, bucket: str, key: str, body: bytes, *, dry_run: bool = False) -> bool:
    """True when uploaded (or would be, in a dry run)."""
    if exists(s3, bucket, key):
        return False
    if not dry_run:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")
    return True


def upload_all(s3: Any, bucket: str, artifact_key: str, artifact: bytes, texts: dict[str, str], *,
               dry_run: bool = False) -> bool:  # fmt: skip
    """The handlers zip and every template; True when the zip was uploaded (or would be)."""
    uploaded = upload_if_absent(s3, bucket, artifact_key, artifact, dry_run=dry_run)
    for stem, text in texts.items():
        upload_if_absent(s3, bucket, template_key(stem, text), text.encode(), dry_run=dry_run)
    return uploaded
