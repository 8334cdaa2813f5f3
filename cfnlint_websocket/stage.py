"""Rules for `AWS::ApiGatewayV2::Stage`: what a WebSocket stage logs, its name, its throttling and
its access-log format, and the account role its logging needs."""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx
from cfnlint.jsonschema import ValidationError, ValidationResult, Validator
from cfnlint.rules.jsonschema.CfnLintKeyword import CfnLintKeyword

try:
    from cfnlint_websocket import _support as support
except ImportError:  # loaded by path (`cfn-lint --append-rules <this folder>`) and not installed
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    from cfnlint_websocket import _support as support

STAGE = "Resources/AWS::ApiGatewayV2::Stage/Properties"
LOGGING_DOC = "https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html"


def _route_settings(validator: Validator, instance: Any) -> Iterator[tuple[deque[str | int], Any, Validator]]:
    """DefaultRouteSettings and each RouteSettings entry, per condition branch, with its path."""
    for settings, branch in support.branches(validator, instance, "DefaultRouteSettings"):
        if isinstance(settings, dict):
            yield deque(["DefaultRouteSettings"]), settings, branch
    for routes, branch in support.branches(validator, instance, "RouteSettings"):
        if isinstance(routes, dict):
            for route, settings in routes.items():
                if isinstance(settings, dict):
                    yield deque(["RouteSettings", route]), settings, branch


class StageRule:
    """A rule on the properties of a stage that is not an HTTP API's. (A mixin, not a rule itself:
    cfn-lint instantiates every CloudFormationLintRule subclass it finds in a rules module.)"""

    def __init__(self) -> None:
        super().__init__([STAGE])  # type: ignore[call-arg]

    def validate(self, validator: Validator, keywords: Any, instance: Any, schema: dict[str, Any]) -> ValidationResult:
        if not isinstance(instance, dict) or support.api_protocol(validator, instance.get("ApiId")) == support.HTTP:
            return
        yield from self.check(validator, instance)

    def check(self, validator: Validator, instance: dict[str, Any]) -> ValidationResult:
        raise NotImplementedError


class DataTraceLogsBodies(StageRule, CfnLintKeyword):
    id = "E9101"
    shortdesc = "WebSocket stage data trace writes message bodies to the logs"
    description = (
        "DataTraceEnabled makes API Gateway log every frame's full body to CloudWatch Logs, at any LoggingLevel. "
        "For a healthcare app that is patient data in logs. Reported when it is on with the template's parameter "
        "defaults (an opt-in parameter that defaults to off is not)."
    )
    source_url = LOGGING_DOC
    tags = ["resources", "apigatewayv2", "websocket", "logging"]

    def check(self, validator: Validator, instance: dict[str, Any]) -> ValidationResult:
        for path, settings, branch in _route_settings(validator, instance):
            for enabled, enabled_branch in support.values(branch, settings, "DataTraceEnabled"):
                if support.truthy(enabled) and support.on_with_defaults(enabled_branch):
                    yield ValidationError(
                        f"{'/'.join(map(str, path))}/DataTraceEnabled is true: every message body goes to "
                        "CloudWatch Logs. Set it to false; log metadata with AccessLogSettings instead.",
                        path=deque([*path, "DataTraceEnabled"]),
                        rule=self,
                    )


class DefaultStageName(StageRule, CfnLintKeyword):
    id = "E9102"
    shortdesc = "WebSocket stage named $default"
    description = "A WebSocket API's stage named $default breaks its URLs and its management endpoint; SAM refuses it."
    source_url = "https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-stages.html"
    tags = ["resources", "apigatewayv2", "websocket"]

    def check(self, validator: Validator, instance: dict[str, Any]) -> ValidationResult:
        for name, _ in support.values(validator, instance, "StageName"):
            if name == "$default":
                yield ValidationError(
                    "StageName is $default: WebSocket clients and the management API then need "
                    "wss://.../$default and https://.../$default/@connections. Name the stage (e.g. prod).",
                    path=deque(["StageName"]),
                    rule=self,
                )


class ThrottlingZero(CfnLintKeyword):
    id = "E9103"
    shortdesc = "Stage throttling left at 0: every request gets 429"
    description = (
        "When DefaultRouteSettings is given without ThrottlingBurstLimit and ThrottlingRateLimit, API Gateway "
        "sets both to 0 and answers every connect and message with 429 Too Many Requests; 0 set on purpose does "
        "the same."
    )
    source_url = "https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html"
    tags = ["resources", "apigatewayv2", "websocket", "throttling"]

    def __init__(self) -> None:
        super().__init__([STAGE])

    def validate(self, validator: Validator, keywords: Any, instance: Any, schema: dict[str, Any]) -> ValidationResult:
        for path, settings, branch in _route_settings(validator, instance):
            for limit in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
                if path[0] == "RouteSettings" and limit not in settings:
                    continue  # a route without its own limit takes the stage's
                for value, _ in support.values(branch, settings, limit):
                    if value is None or _number(value) == 0:
                        said = "is missing" if value is None else "is 0"
                        yield ValidationError(
                            f"{'/'.join(map(str, path))}/{limit} {said}: API Gateway then throttles every request "
                            f"(429). Set {limit} to the traffic you expect (e.g. 500 burst, 1000 rate).",
                            path=deque([*path, limit]) if value is not None else path,
                            rule=self,
                        )


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# $context variables of WebSocket APIs ("Configure logging for WebSocket APIs in API Gateway").
WEBSOCKET_VARIABLES = frozenset({
    "apiId", "authorize.error", "authorize.latency", "authorize.status", "authorizer.error",
    "authorizer.integrationLatency", "authorizer.integrationStatus", "authorizer.latency", "authorizer.requestId",
    "authorizer.status", "authorizer.principalId", "authenticate.error", "authenticate.latency",
    "authenticate.status", "connectedAt", "connectionId", "domainName", "error.message", "error.messageString",
    "error.responseType", "error.validationErrorString", "eventType", "extendedRequestId", "identity.accountId",
    "identity.caller", "identity.cognitoAuthenticationProvider", "identity.cognitoAuthenticationType",
    "identity.cognitoIdentityId", "identity.cognitoIdentityPoolId", "identity.principalOrgId", "identity.sourceIp",
    "identity.user", "identity.userAgent", "identity.userArn", "integration.error", "integration.integrationStatus",
    "integration.latency", "integration.requestId", "integration.status", "integrationLatency", "integrationStatus",
    "messageId", "requestId", "requestTime", "requestTimeEpoch", "routeKey", "stage", "status",
})  # fmt: skip
WEBSOCKET_VARIABLE_PREFIXES = ("authorizer.",)  # $context.authorizer.<key> of a Lambda authorizer's context
VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]*[A-Za-z0-9_])")


def _formats(validator: Validator, instance: dict[str, Any]) -> Iterator[str]:
    for settings, branch in support.branches(validator, instance, "AccessLogSettings"):
        if isinstance(settings, dict):
            for log_format, _ in support.values(branch, settings, "Format"):
                if isinstance(log_format, str):
                    yield log_format


class AccessLogWithoutRequestId(StageRule, CfnLintKeyword):
    id = "E9104"
    shortdesc = "Access-log format without $context.requestId"
    description = "API Gateway refuses an access-log format that does not log $context.requestId."
    source_url = LOGGING_DOC
    tags = ["resources", "apigatewayv2", "websocket", "logging"]

    def check(self, validator: Validator, instance: dict[str, Any]) -> ValidationResult:
        for log_format in _formats(validator, instance):
            if not {"requestId", "extendedRequestId"} & set(VARIABLE.findall(log_format)):
                yield ValidationError(
                    "AccessLogSettings/Format does not log $context.requestId: API Gateway refuses the stage. "
                    'Add it (e.g. {"requestId":"$context.requestId", ...}).',
                    path=deque(["AccessLogSettings", "Format"]),
                    rule=self,
                )


class AccessLogUnknownVariable(StageRule, CfnLintKeyword):
    id = "W9105"
    shortdesc = "Access-log format uses $context variables WebSocket APIs do not define"
    description = (
        "Variables of REST and HTTP APIs ($context.protocol, $context.responseLength, $context.httpMethod, ...) "
        "are not defined for WebSocket APIs: their fields log nothing useful."
    )
    source_url = LOGGING_DOC
    tags = ["resources", "apigatewayv2", "websocket", "logging"]

    def check(self, validator: Validator, instance: dict[str, Any]) -> ValidationResult:
        if support.api_protocol(validator, instance.get("ApiId")) != support.WEBSOCKET:
            return
        for log_format in _formats(validator, instance):
            unknown = sorted(
                {
                    name
                    for name in VARIABLE.findall(log_format)
                    if name not in WEBSOCKET_VARIABLES and not name.startswith(WEBSOCKET_VARIABLE_PREFIXES)
                }
            )
            if unknown:
                yield ValidationError(
                    f"AccessLogSettings/Format uses {', '.join('$context.' + n for n in unknown)}, which WebSocket "
                    "APIs do not define. Use WebSocket variables (e.g. $context.connectionId, $context.eventType, "
                    "$context.routeKey, $context.integration.error).",
                    path=deque(["AccessLogSettings", "Format"]),
                    rule=self,
                )


class LoggingWithoutAccountRole(StageRule, CfnLintKeyword):
    id = "W9106"
    shortdesc = "Stage logging with no account CloudWatch role in the template"
    description = (
        "Execution logging (LoggingLevel INFO or ERROR, DataTraceEnabled) and access logging need the account's "
        "API Gateway CloudWatch role (AWS::ApiGateway::Account); without it the stage fails to create."
    )
    source_url = "https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html"
    tags = ["resources", "apigatewayv2", "websocket", "logging"]

    def check(self, validator: Validator, instance: dict[str, Any]) -> ValidationResult:
        if not self._logs(validator, instance):
            return
        accounts = support.resource_of_type(validator, "AWS::ApiGateway::Account")
        if not accounts:
            yield ValidationError(
                "This stage logs, and the template sets no AWS::ApiGateway::Account: unless the account already "
                "has an API Gateway CloudWatch role, the stage fails to create ('CloudWatch Logs role ARN must be "
                "set in account settings'). Add AWS::ApiGateway::Account with a role trusting "
                "apigateway.amazonaws.com, and DependsOn it.",
                rule=self,
            )
            return
        stage = validator.context.path.path[1] if len(validator.context.path.path) > 1 else None
        graph = getattr(validator.cfn.graph, "graph", None)
        if stage is None or graph is None or stage not in graph:
            return
        if not any(account in graph and networkx.has_path(graph, stage, account) for account in accounts):
            yield ValidationError(
                f"This stage logs but does not depend on {', '.join(accounts)}: CloudFormation may create it before "
                "the account role is set, and the stage fails. Add DependsOn.",
                rule=self,
            )

    @staticmethod
    def _logs(validator: Validator, instance: dict[str, Any]) -> bool:
        for settings, _ in support.branches(validator, instance, "AccessLogSettings"):
            if isinstance(settings, dict):
                return True
        for _, settings, branch in _route_settings(validator, instance):
            for level, _ in support.values(branch, settings, "LoggingLevel"):
                if isinstance(level, str) and level.upper() in ("INFO", "ERROR"):
                    return True
            for enabled, _ in support.values(branch, settings, "DataTraceEnabled"):
                if support.truthy(enabled):
                    return True
        return False
