"""Rules for the `AWS::Lambda::Permission` that lets API Gateway invoke a WebSocket route's function."""

from __future__ import annotations

import re
import sys
from collections import deque
from pathlib import Path
from typing import Any

from cfnlint.jsonschema import ValidationError, ValidationResult, Validator
from cfnlint.rules.jsonschema.CfnLintKeyword import CfnLintKeyword

try:
    from cfnlint_websocket import _support as support
except ImportError:  # loaded by path (`cfn-lint --append-rules <this folder>`) and not installed
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    from cfnlint_websocket import _support as support

PLACEHOLDER = re.compile(r"\$\{[^}]*\}")  # ${AWS::Region}: its colons are not the ARN's
PERMISSION = "Resources/AWS::Lambda::Permission/Properties"
DOC = "https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html"
TIGHT = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/${Stage}/${RouteKey}"


def source_arns(validator: Validator, instance: Any) -> list[tuple[str | None, Validator]]:
    """The SourceArn of an API Gateway invoke permission in a template with a WebSocket API, per
    branch (None: no SourceArn); [] when the rule does not apply."""
    if not isinstance(instance, dict) or not support.websocket_apis(validator):
        return []
    found: list[tuple[str | None, Validator]] = []
    for principal, branch in support.values(validator, instance, "Principal"):
        if isinstance(principal, str) and principal.startswith("apigateway."):
            for arn, arn_branch in support.values(branch, instance, "SourceArn"):
                found.append((arn if isinstance(arn, str) else None, arn_branch))
    return found


def execute_api_parts(arn: str) -> tuple[str, str, str, str, str] | None:
    """(region, account, api, stage, route) of an execute-api ARN; missing parts are ''."""
    fields = PLACEHOLDER.sub(lambda m: m.group(0).replace(":", "."), arn).split(":", 5)
    if len(fields) != 6 or fields[2] != "execute-api":
        return None
    api, _, rest = fields[5].partition("/")
    stage, _, route = rest.partition("/")
    if not route and stage.startswith("*") and len(stage) > 1:  # CDK's `${Api}/*$connect`: any stage, one route
        stage, route = "*", stage[1:]
    return fields[3], fields[4], api, stage, route


class PermissionRule:
    """Checks each SourceArn (None: none given) with its execute-api parts. A mixin, not a rule:
    cfn-lint instantiates every CloudFormationLintRule subclass in a rules module."""

    source_url = DOC
    tags = ["resources", "lambda", "apigatewayv2", "websocket", "security"]

    def __init__(self) -> None:
        super().__init__([PERMISSION])  # type: ignore[call-arg]

    def validate(self, validator: Validator, keywords: Any, instance: Any, schema: dict[str, Any]) -> ValidationResult:
        for arn, _ in source_arns(validator, instance):
            yield from self.check(arn, execute_api_parts(arn) if arn is not None else None)

    def check(self, arn: str | None, parts: tuple[str, str, str, str, str] | None) -> ValidationResult:
        raise NotImplementedError


class InvokeNotBoundToOneApi(PermissionRule, CfnLintKeyword):
    id = "E9107"
    shortdesc = "API Gateway invoke permission not bound to one API"
    description = (
        "An invoke permission for apigateway.amazonaws.com without a SourceArn, or with * for the region, "
        "account or API id, lets any API Gateway API (in any account, without SourceArn) invoke the function."
    )

    def check(self, arn: str | None, parts: tuple[str, str, str, str, str] | None) -> ValidationResult:
        if arn is None:
            problem = "has no SourceArn: any API in any account can invoke the function"
        elif parts is not None and any("*" in part for part in parts[:3]):
            problem = f"SourceArn {arn} names every API (or region, or account)"
        else:
            return
        yield ValidationError(
            f"This API Gateway invoke permission {problem}. Set SourceArn to {TIGHT} (one API, stage and route).",
            path=deque(["SourceArn"]) if arn is not None else deque(),
            rule=self,
        )


class InvokeOpenToAnyStageOrRoute(PermissionRule, CfnLintKeyword):
    id = "W9108"
    shortdesc = "API Gateway invoke permission open to any stage or route"
    description = (
        "A SourceArn ending in /* or /*/* lets every stage (a test stage, a forgotten one) and every route of "
        "the API invoke the function, not only the route it serves."
    )

    def check(self, arn: str | None, parts: tuple[str, str, str, str, str] | None) -> ValidationResult:
        if parts is None or any("*" in part for part in parts[:3]):
            return  # not an execute-api ARN, or E9107's
        _, _, _, stage, route = parts
        open_to = [what for what, part in (("stage", stage), ("route", route)) if "*" in part or not part]
        if open_to:
            yield ValidationError(
                f"SourceArn {arn} lets any {' and any '.join(open_to)} of the API invoke the function. "
                f"Name the stage and route: {TIGHT}.",
                path=deque(["SourceArn"]),
                rule=self,
            )
