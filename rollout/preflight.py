"""Checks before anything changes: who and where, fresh templates, the artifacts bucket, the
account's API Gateway CloudWatch role, and that nobody else is changing the stacks."""

from __future__ import annotations

from dataclasses import replace

from botocore.exceptions import ClientError

from rollout.aws import Aws
from rollout.freshness import StaleTemplates, fresh_templates
from rollout.plan import Plan, frozen
from rollout.report import Reporter
from rollout.stacks import StackState, describe, refusal


class PreflightFailed(RuntimeError):
    """Something is not ready; nothing was changed. The text says what to do. Exit code 2 for
    settings and set-up, 1 when a stack cannot be deployed now."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def rendered_templates() -> dict[str, str]:
    """The templates as the generator produces them now, by stem; refused if templates_out/ differs."""
    try:
        return fresh_templates()
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


ACCOUNT_ROLE_PARAMETER = "CreateApiGatewayAccountRole"


def with_account_role(aws: Aws, plan: Plan, report: Reporter) -> Plan:
    """The plan with CreateApiGatewayAccountRole decided for this account and region.

    Access logging (always on) and execution logging need the account's API Gateway CloudWatch
    role. An explicit setting is kept: `false` in an account without the role is refused (the
    stage would fail), `true` where someone else's role is set is warned about (it is replaced).
    Left unset, the stack creates the role when the account has none (or has this stack's),
    and otherwise keeps the role someone else set.
    """
    websocket = plan.stack("websocket")
    explicit = websocket.parameters.get(ACCOUNT_ROLE_PARAMETER)
    role = aws.client("apigateway").get_account().get("cloudwatchRoleArn") or ""
    ours = f":role/{websocket.stack_name}-ApiGatewayCloudWatchRole-" in role
    if explicit == "false":
        if not role:
            raise PreflightFailed(
                "this account and region have no API Gateway CloudWatch role, and the stage's access "
                "logging needs one: set CreateApiGatewayAccountRole: true, or set a role first "
                "(aws apigateway update-account --patch-operations op=replace,path=/cloudwatchRoleArn,value=<role ARN>)"
            )
        return plan
    if explicit == "true":
        if role and not ours:
            report.line(
                "preflight",
                f"the account's API Gateway CloudWatch role {role} will be replaced by this "
                "stack's (CreateApiGatewayAccountRole: true)",
            )
        return plan
    decided = "false" if role and not ours else "true"
    report.line(
        "preflight",
        f"API Gateway CloudWatch role: {'keeping ' + role if decided == 'false' else 'set by this stack'}"
        f" (CreateApiGatewayAccountRole {decided})",
    )
    stacks = tuple(
        replace(stage, parameters=frozen({**stage.parameters, ACCOUNT_ROLE_PARAMETER: decided}))
        if stage.stage == "websocket"
        else stage
        for stage in plan.stacks
    )
    return replace(plan, stacks=stacks)


def stack_states(aws: Aws, plan: Plan) -> dict[str, StackState | None]:
    """Each stage's stack as it is now (None: absent), read once; refused if it cannot be deployed."""
    states = {stage.stage: describe(aws.client("cloudformation"), stage.stack_name) for stage in plan.stacks}
    for stage in plan.stacks:
        problem = refusal(stage.stack_name, states[stage.stage])
        if problem:
            raise PreflightFailed(problem, exit_code=1)
    return states
