"""No rollout role can widen itself or the other: every statement of both roles, under every
option and rollout stack name, resolved against the physical ARNs of the rollout's own roles,
allows no call that changes what a role may do. (The earlier roles could: the service role's
`role/${NamePrefix}-websocket-*` matched `cc-websocket-rollout-CloudFormationRole-...`.)"""

from __future__ import annotations

from typing import Any

import pytest

from gates import iam_eval, permissions
from gates.iam_eval import Request
from generator.build import build_all

ROLES = ("CloudFormationRole", "StateMachineRole")
# Stack names a rollout stack may have: the default, another prefix, one sharing a target's name.
ROLLOUT_STACKS = ("cc-websocket-rollout", "staging-websocket-rollout", "cc-websocket-api-rollout")
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
WIDENING: list[tuple[str, dict[str, Any]]] = [
    ("iam:PutRolePolicy", {}),
    ("iam:AttachRolePolicy", {"iam:PolicyARN": ADMIN}),
    *(("iam:AttachRolePolicy", {"iam:PolicyARN": p}) for p in
      ("arn:aws:iam::aws:policy/service-role/AWSLambdaENIManagementAccess",
       "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")),
    ("iam:UpdateAssumeRolePolicy", {}),
    ("iam:DeleteRolePermissionsBoundary", {}),
    ("iam:PutRolePermissionsBoundary", {}),
    ("iam:UpdateRole", {}),
    ("iam:TagRole", {"aws:RequestTag/Application": "CareConnect", "aws:TagKeys": ("Application",)}),
    ("iam:UntagRole", {"aws:TagKeys": ("Application",)}),
    *(("iam:PassRole", {"iam:PassedToService": s}) for s in
      ("lambda.amazonaws.com", "apigateway.amazonaws.com", "states.amazonaws.com", "cloudformation.amazonaws.com")),
]  # fmt: skip


def physical_arn(rollout: dict[str, Any], logical: str, stack: str) -> str:
    """The ARN CloudFormation gives a role it names: <path><stack>-<logical>-<suffix>."""
    path = rollout["Resources"][logical]["Properties"].get("Path", "/")
    return f"arn:aws:iam::{permissions.ACCOUNT}:role{path}{stack}-{logical}-AbCdEf123456"


def by_design(holder: str, target: str, action: str, context: dict[str, Any]) -> bool:
    """The one pass the rollout exists for: its state machine hands CloudFormation the service role."""
    return (holder, target, action) == ("StateMachineRole", "CloudFormationRole", "iam:PassRole") and context == {
        "iam:PassedToService": "cloudformation.amazonaws.com"
    }


def widening(rollout: dict[str, Any]) -> list[str]:
    found = []
    for option in permissions.OPTIONS:
        parameters = {**permissions.STACK_NAMES, **option.parameters("rollout")}
        for holder in ROLES:
            documents = permissions.role_documents(rollout, parameters, holder)
            for stack in ROLLOUT_STACKS:
                for target in ROLES:
                    arn = physical_arn(rollout, target, stack)
                    for action, context in WIDENING:
                        if by_design(holder, target, action, context):
                            continue
                        if iam_eval.allowed(documents, Request(action, arn, context)):
                            found.append(f"{option.name}: {holder} may {action} {context or ''} on {arn}")
    return found


def test_no_rollout_role_can_widen_a_rollout_role() -> None:
    rollout = build_all(["rollout"])["rollout"].to_dict()
    assert widening(rollout) == []


def test_without_the_path_the_service_role_could_widen_itself() -> None:
    """What the check catches: the roles named as before (no path)."""
    rollout = build_all(["rollout"])["rollout"].to_dict()
    for role in ROLES:
        del rollout["Resources"][role]["Properties"]["Path"]
    found = widening(rollout)
    assert any(
        "CloudFormationRole may iam:PutRolePolicy" in f and "role/cc-websocket-rollout-Cloud" in f for f in found
    )


@pytest.mark.parametrize("holder", ROLES)
def test_the_rollout_roles_live_under_the_rollout_path(holder: str) -> None:
    rollout = build_all(["rollout"])["rollout"].to_dict()
    assert rollout["Resources"][holder]["Properties"]["Path"] == "/rollout/"
