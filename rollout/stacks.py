"""A stack as CloudFormation holds it, and whether the rollout may change it now.

The deploy step itself is `rollout.steps.DeployStack`: a stack whose live template, parameters
and code are the plan's (read back, `rollout.live`; the fingerprint tag is only a hint for people)
is left alone without a single mutating call; otherwise a change set shows the planned changes
before anything runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from generator.stages import UPDATABLE

FINGERPRINT_TAG = "careconnect:rollout-fingerprint"
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]


class StageFailed(RuntimeError):
    """A stack stage ended in failure; `details` lists the failing resources and reasons."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class Declined(RuntimeError):
    """The release engineer answered no; nothing was executed."""


@dataclass(frozen=True)
class StackState:
    stack_id: str
    status: str
    reason: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    tags: dict[str, str]
    last_update: str = ""  # ISO 8601 UTC: the last update, else the creation
    role_arn: str = ""  # the service role CloudFormation keeps for every later operation
    protected: bool = False  # termination protection (EnableTerminationProtection)


def fingerprint(template_sha256: str, parameters: dict[str, str]) -> str:
    payload = json.dumps({"template": template_sha256, "parameters": parameters}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def describe(cloudformation: Any, stack_name: str) -> StackState | None:
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return StackState(
        stack_id=stack["StackId"],
        status=stack["StackStatus"],
        reason=stack.get("StackStatusReason", ""),
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        tags={t["Key"]: t["Value"] for t in stack.get("Tags", [])},
        last_update=iso_time(stack.get("LastUpdatedTime") or stack.get("CreationTime")),
        role_arn=stack.get("RoleARN", ""),
        protected=bool(stack.get("EnableTerminationProtection", False)),
    )


def iso_time(moment: datetime | None) -> str:
    """A timestamp boto3 returned, as ISO 8601 to the second; '' for none."""
    return moment.isoformat(timespec="seconds") if moment else ""


def refusal(stack_name: str, state: StackState | None) -> str | None:
    """Why this stack cannot be deployed now (someone else's change, a stuck state), or None."""
    if state is None or state.status in (*UPDATABLE, "ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"):
        return None
    if state.status.endswith("_IN_PROGRESS"):
        return (
            f"stack {stack_name} is {state.status}: someone else is changing it. Wait until it "
            "finishes (or rolls back), then run the rollout again."
        )
    if state.status == "UPDATE_ROLLBACK_FAILED":
        return (
            f"stack {stack_name} is UPDATE_ROLLBACK_FAILED ({state.reason or 'no reason given'}). Fix the "
            "resources named in its events, then run `aws cloudformation continue-update-rollback "
            f"--stack-name {stack_name}` and, once it is UPDATE_ROLLBACK_COMPLETE, run the rollout again."
        )
    return (
        f"stack {stack_name} is {state.status} ({state.reason or 'no reason given'}); it cannot be "
        "updated. Inspect its events in the CloudFormation console."
    )
