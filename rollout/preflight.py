"""Checks before anything changes: fresh templates, the artifacts bucket, and that nobody else is
changing the stacks (`refusal`)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from generator.project import Project
from rollout.aws import Aws
from rollout.freshness import StaleTemplates, fresh_templates
from rollout.stacks import refusal

__all__ = ["PreflightFailed", "check_bucket", "refusal", "rendered_templates"]


class PreflightFailed(RuntimeError):
    """Something is not ready; nothing was changed. The text says what to do. Exit code 2 for
    settings and set-up, 1 when a stack cannot be deployed now."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def rendered_templates(project: Project) -> dict[str, str]:
    """The templates as the generator produces them now, by stem; refused if templates_out/ differs."""
    try:
        return fresh_templates(project)
    except StaleTemplates as stale:
        raise PreflightFailed(str(stale)) from None


def check_bucket(aws: Aws, bucket: str) -> None:
    try:
        aws.client("s3").head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        what = "does not exist" if code in ("404", "NoSuchBucket", "NotFound") else f"is not usable ({code})"
        raise PreflightFailed(
            f"artifacts bucket {bucket} {what}: create it (private, versioned) or set artifacts_bucket"
        ) from None
