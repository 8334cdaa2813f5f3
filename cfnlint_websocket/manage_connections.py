"""Rule for IAM policies granting `execute-api:ManageConnections` (post to, read and close any
client's connection) more widely than one API's stage."""

from __future__ import annotations

import fnmatch
import sys
from collections import deque
from pathlib import Path
from typing import Any

from cfnlint.jsonschema import ValidationError, ValidationResult, Validator
from cfnlint.rules.jsonschema.CfnLintKeyword import CfnLintKeyword

try:
    from cfnlint_websocket import _support as support
    from cfnlint_websocket.invoke import execute_api_parts
except ImportError:  # loaded by path (`cfn-lint --append-rules <this folder>`) and not installed
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    from cfnlint_websocket import _support as support
    from cfnlint_websocket.invoke import execute_api_parts

ACTION = "execute-api:manageconnections"
TIGHT = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/${Stage}/POST/@connections/*"


class ManageConnectionsEverywhere(CfnLintKeyword):
    id = "E9109"
    shortdesc = "execute-api:ManageConnections granted on every API"
    description = (
        "ManageConnections on Resource * (or an execute-api ARN with * for the region, account or API id) lets "
        "the principal post to, read and close the connections of every WebSocket API it can reach."
    )
    source_url = (
        "https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html"
    )
    tags = ["resources", "iam", "apigatewayv2", "websocket", "security"]

    def __init__(self) -> None:
        super().__init__(
            [
                "Resources/AWS::IAM::Policy/Properties/PolicyDocument",
                "Resources/AWS::IAM::ManagedPolicy/Properties/PolicyDocument",
                "Resources/AWS::IAM::Role/Properties/Policies/*/PolicyDocument",
                # cfn-lint (1.x) checks SAM templates as written: a function's inline policy documents.
                "Resources/AWS::Serverless::Function/Properties",
            ]
        )

    def validate(self, validator: Validator, keywords: Any, instance: Any, schema: dict[str, Any]) -> ValidationResult:
        if validator.context.path.cfn_path[1] == "AWS::Serverless::Function":
            for policy, branch in support.branches(validator, instance, "Policies", "*"):
                if isinstance(policy, dict) and "Statement" in policy:  # not a policy template or a name
                    yield from self._check(branch, policy)
            return
        yield from self._check(validator, instance)

    def _check(self, validator: Validator, instance: Any) -> ValidationResult:
        for index, statement, branch in support.statements(validator, instance):
            if statement.get("Effect") != "Allow" or not self._grants(branch, statement):
                continue
            for resource, _ in support.values(branch, statement, "Resource"):
                for arn in support.as_list(resource):
                    if isinstance(arn, str) and self._every_api(arn):
                        yield ValidationError(
                            f"Statement {index} allows execute-api:ManageConnections on {arn}: every WebSocket "
                            f"API's connections. Grant it on {TIGHT} only.",
                            path=deque(["Statement", index, "Resource"]),
                            rule=self,
                        )

    @staticmethod
    def _grants(validator: Validator, statement: dict[str, Any]) -> bool:
        for actions, _ in support.values(validator, statement, "Action"):
            for action in support.as_list(actions):
                if isinstance(action, str) and fnmatch.fnmatchcase(ACTION, action.lower()):
                    return True
        return False

    @staticmethod
    def _every_api(arn: str) -> bool:
        if arn.strip() == "*":
            return True
        parts = execute_api_parts(arn)
        return parts is not None and any("*" in part for part in parts[:3])
