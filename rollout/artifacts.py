"""Upload the handlers zip and the templates to the artifacts bucket, each under a key that
carries its content hash; an object already there is not uploaded again.

Templates reach CloudFormation by `TemplateURL`, never `TemplateBody`: a request body holds at
most 51,200 bytes (the rollout template is larger), a template in S3 up to 1 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from cfnlint_websocket.limits import TEMPLATE_BODY_LIMIT, TEMPLATE_URL_LIMIT  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class StoredTemplate:
    """A template's text (for fingerprints and comparisons) and where CloudFormation reads it."""

    stem: str
    text: str
    url: str

    def parsed(self) -> Any:
        """The template as data (libyaml when PyYAML has it: the pure-Python parser takes half a
        second on the compute template, more than a whole no-op run's AWS calls)."""
        return load_template(self.text)


_PARSED: dict[str, Any] = {}  # sha256 of a template's text -> its data, parsed once per process


def load_template(text: str, cache: Path | None = None) -> Any:
    """A generated template's YAML (plain YAML: the generator writes long-form intrinsics), parsed
    once per text in a process; with `cache` (the project's .cache/) once per text at all, kept
    there as JSON, which loads forty times faster (the compute template: 45 ms as YAML, 1 ms as
    JSON). Callers only read it."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest in _PARSED:
        return _PARSED[digest]
    kept = cache / "parsed-templates" / f"{digest}.json" if cache else None
    if kept is not None and kept.is_file():
        parsed = json.loads(kept.read_text())
    else:
        parsed = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if kept is not None:
            _keep(kept, parsed)
    _PARSED[digest] = parsed
    return parsed


def _keep(path: Path, parsed: Any) -> None:
    """Written whole or not at all (a concurrent run reads either nothing or all of it)."""
    try:
        encoded = json.dumps(parsed)
        if json.loads(encoded) != parsed:  # e.g. a YAML date: the cache would answer otherwise
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(encoded)
        partial.replace(path)
    except (OSError, TypeError, ValueError):
        pass  # a cache that cannot be written only costs the parse next time


def template_key(stem: str, text: str) -> str:
    return f"templates/{stem}-{hashlib.sha256(text.encode()).hexdigest()[:20]}.yaml"


def object_url(bucket: str, key: str, region: str) -> str:
    """The virtual-hosted S3 URL CloudFormation accepts as a TemplateURL."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{suffix}/{key}"


# S3 answers a missing key with 404 only to a caller holding s3:ListBucket; to one without it, 403.
# The rollout needs no ListBucket (keys are content hashes): a 403 reads as absent, and a caller
# that really may not write meets the upload's own AccessDenied, naming the key.
ABSENT = ("404", "NoSuchKey", "NotFound", "403", "Forbidden", "AccessDenied")


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in ABSENT:
            return False
        raise


def upload_if_absent(s3: Any, bucket: str, key: str, body: bytes, *, dry_run: bool = False) -> bool:
    """True when uploaded (or would be, in a dry run)."""
    if exists(s3, bucket, key):
        return False
    if not dry_run:
        # No ServerSideEncryption: the bucket's default (SSE-KMS) applies; forcing AES256 would be
        # refused by a bucket policy or SCP that requires aws:kms.
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return True


def upload_templates(s3: Any, bucket: str, region: str, texts: dict[str, str]) -> dict[str, StoredTemplate]:
    """Every template, by stem. Also in a dry run: a change set can only be planned from S3."""
    stored = {}
    for stem, text in texts.items():
        size = len(text.encode())
        if size > TEMPLATE_URL_LIMIT:
            raise ValueError(
                f"the {stem} template is {size:,} bytes; CloudFormation reads at most {TEMPLATE_URL_LIMIT:,} from S3"
            )
        key = template_key(stem, text)
        upload_if_absent(s3, bucket, key, text.encode())
        stored[stem] = StoredTemplate(stem, text, object_url(bucket, key, region))
    return stored
