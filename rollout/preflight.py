"""Checks before anything changes: who and where, fresh templates, the artifacts bucket, the
account's API Gateway CloudWatch role, and that nobody else is changing the stacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from generator.build import build_all, render_all
from generator.cli import DEFAULT_OUT
from generator.render import compare
from rollout.aws import Aws
from rollout.plan import Plan
from rollout.report import Reporter
from rollout.stacks import describe, refusal


class PreflightFailed(RuntimeError):
    """Something is not ready; nothing was changed. The text says what to do. Exit code 2 for
    settings and set-up, 1 when a stack cannot be deployed now."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def rendered_templates() -> dict[str, str]:
    """The templates as the generator produces them now, by stem; refused if templates_out/ differs."""
    texts = render_all(build_all(), "yaml")
    stale = compare(texts, DEFAULT_OUT, "yaml")
    if not stale.clean:
        raise PreflightFailed(
            "templates_out/ is not what the generator produces:\n"
            + stale.explain(DEFAULT_OUT)
            + "\nRun `python -m generator`, review and commit templates_out/, then deploy."
        )
    return {name.removesuffix(".yaml"): text for name, text in texts.items()}


def check_bucket(aws: Aws, bucket: str) -> None:
    try:
        aws.client("s3").head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        what = (
            "does not exist"
            if code in ("404", "NoSuchBucket", "NotFound")
            else f"is not usable ({code})"
        )
        raise PreflightFailed(
            f"artifacts bucket {bucket} {what}: create it (private, versioned) or set artifacts_bucket"
        ) from None


def account_logging_role(aws: Aws, websocket_parameters: dict[str, str], defaults: dict[str, Any],
                         report: Reporter, confirm: Callable[[str], bool]) -> dict[str, str]:  # fmt: skip
    """The websocket parameters, with CreateApiGatewayAccountRole turned on when the account
    lacks the role execution logging needs and the engineer agrees."""
    creates = websocket_parameters.get(
        "CreateApiGatewayAccountRole", str(defaults["CreateApiGatewayAccountRole"])
    )
    logging_level = websocket_parameters.get("LoggingLevel", str(defaults["LoggingLevel"]))
    role = aws.client("apigateway").get_account().get("cloudwatchRoleArn")
    if role:
        if creates == "true":
            report.line("preflight", f"the account already has an API Gateway CloudWatch role ({role}); this stack "
                                     "will replace it. Set CreateApiGatewayAccountRole: false to keep it.")  # fmt: skip
        return websocket_parameters
    if creates == "true" or logging_level == "OFF":
        return websocket_parameters
    question = ("This account and region have no API Gateway CloudWatch role, so a stage with execution "
                f"logging ({logging_level}) would fail. Let the websocket stack create it?")  # fmt: skip
    if confirm(question):
        report.line("preflight", "CreateApiGatewayAccountRole set to true for this run")
        return {**websocket_parameters, "CreateApiGatewayAccountRole": "true"}
    raise PreflightFailed(
        "no API Gateway CloudWatch role: set CreateApiGatewayAccountRole: true or LoggingLevel: OFF"
    )


def check_stacks(aws: Aws, plan: Plan) -> None:
    for stage in plan.stacks:
        problem = refusal(
            stage.stack_name, describe(aws.client("cloudformation"), stage.stack_name)
        )
        if problem:
            raise PreflightFailed(problem, exit_code=1)
