"""E9101-W9106: a WebSocket stage's logging, name, throttling and access-log format."""

from __future__ import annotations

import copy
from typing import Any

from tests.lint.conftest import Findings, ids, websocket_template

THROTTLED = {"ThrottlingBurstLimit": 500, "ThrottlingRateLimit": 1000}
FORMAT = '{"requestId":"$context.requestId","connectionId":"$context.connectionId","eventType":"$context.eventType"}'
ACCOUNT = {
    "AccountRole": {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "apigateway.amazonaws.com"}}]},
        "ManagedPolicyArns": [
            "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"]}},
    "Account": {"Type": "AWS::ApiGateway::Account",
                "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["AccountRole", "Arn"]}}},
}  # fmt: skip


def with_account(template: dict[str, Any], depends: bool = True) -> dict[str, Any]:
    template["Resources"].update(copy.deepcopy(ACCOUNT))
    if depends:
        template["Resources"]["Stage"]["DependsOn"] = ["Account"]
    return template


def test_data_trace_on_is_an_error_wherever_it_is_set(findings: Findings) -> None:
    default = websocket_template(DefaultRouteSettings={"DataTraceEnabled": True, "LoggingLevel": "ERROR", **THROTTLED})
    route = websocket_template(RouteSettings={"sendmessage": {"DataTraceEnabled": "true"}})
    for template in (with_account(default), with_account(route)):
        assert ids(findings(template)) == ["E9101"]
    assert "every message body" in findings(with_account(default))[0][1]


def test_data_trace_behind_a_parameter_counts_by_its_default(findings: Findings) -> None:
    """An opt-in that defaults to off (what this project generates) passes; defaulting to on does not."""

    def opt_in(default: str) -> dict[str, Any]:
        template = websocket_template(DefaultRouteSettings={
            "DataTraceEnabled": {"Fn::If": ["TraceOn", True, False]}, "LoggingLevel": "ERROR", **THROTTLED})  # fmt: skip
        template["Parameters"]["Trace"] = {"Type": "String", "Default": default, "AllowedValues": ["true", "false"]}
        template["Conditions"] = {"TraceOn": {"Fn::Equals": [{"Ref": "Trace"}, "true"]}}
        return with_account(template)

    assert ids(findings(opt_in("false"))) == []
    assert ids(findings(opt_in("true"))) == ["E9101"]


def test_data_trace_off_passes(findings: Findings) -> None:
    template = websocket_template(DefaultRouteSettings={"DataTraceEnabled": False, "LoggingLevel": "INFO", **THROTTLED})
    assert ids(findings(with_account(template))) == []


def test_a_stage_named_default_is_an_error_for_websocket_apis_only(findings: Findings) -> None:
    template = websocket_template()
    template["Parameters"]["StageName"]["Default"] = "$default"
    assert ids(findings(template)) == ["E9102"]
    http = copy.deepcopy(template)
    http["Resources"]["Api"]["Properties"] = {"Name": "http", "ProtocolType": "HTTP"}
    http["Resources"]["Permission"]["Properties"]["SourceArn"] = {"Fn::Sub": "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/$default/GET/x"}  # fmt: skip
    assert ids(findings(http)) == []


def test_route_settings_without_throttling_are_an_error(findings: Findings) -> None:
    """The 429-on-everything trap: DefaultRouteSettings given, limits left out (or 0)."""
    missing = findings(websocket_template(DefaultRouteSettings={"DetailedMetricsEnabled": True}))
    assert ids(missing) == ["E9103", "E9103"]
    assert any("ThrottlingBurstLimit is missing" in message for _, message in missing)
    zero = websocket_template(DefaultRouteSettings={"ThrottlingBurstLimit": 0, "ThrottlingRateLimit": 100})
    assert ids(findings(zero)) == ["E9103"]
    route_zero = websocket_template(
        DefaultRouteSettings=THROTTLED, RouteSettings={"sendmessage": {"ThrottlingRateLimit": 0}}
    )
    assert ids(findings(route_zero)) == ["E9103"]


def test_throttling_from_a_parameter_counts_by_its_default(findings: Findings) -> None:
    template = websocket_template(
        DefaultRouteSettings={"ThrottlingBurstLimit": {"Ref": "Burst"}, "ThrottlingRateLimit": 10}
    )
    template["Parameters"]["Burst"] = {"Type": "Number", "Default": 0}
    assert ids(findings(template)) == ["E9103"]
    template["Parameters"]["Burst"]["Default"] = 50
    assert ids(findings(template)) == []


def test_throttling_set_or_no_route_settings_pass(findings: Findings) -> None:
    assert ids(findings(websocket_template(DefaultRouteSettings=THROTTLED))) == []
    assert ids(findings(websocket_template())) == []
    # a route's own settings without limits take the stage's
    template = websocket_template(
        DefaultRouteSettings=THROTTLED, RouteSettings={"sendmessage": {"DetailedMetricsEnabled": True}}
    )
    assert ids(findings(template)) == []


def access_logged(log_format: Any) -> dict[str, Any]:
    template = websocket_template(AccessLogSettings={"DestinationArn": "arn:aws:logs:us-east-1:123456789012:log-group:ws",
                                                     "Format": log_format})  # fmt: skip
    return with_account(template)


def test_access_log_format_must_log_the_request_id(findings: Findings) -> None:
    assert ids(findings(access_logged('{"connectionId":"$context.connectionId"}'))) == ["E9104"]
    assert ids(findings(access_logged(FORMAT))) == []
    assert ids(findings(access_logged("$context.extendedRequestId $context.routeKey"))) == []


def test_access_log_format_from_a_sub_is_resolved(findings: Findings) -> None:
    template = access_logged({"Fn::Sub": "${Fields} $context.routeKey"})
    template["Parameters"]["Fields"] = {"Type": "String", "Default": "$context.connectionId"}
    assert ids(findings(template)) == ["E9104"]
    template["Parameters"]["Fields"]["Default"] = "$context.requestId"
    assert ids(findings(template)) == []


def test_access_log_variables_websocket_apis_do_not_define_are_a_warning(findings: Findings) -> None:
    found = findings(access_logged('{"requestId":"$context.requestId","protocol":"$context.protocol",'
                                   '"len":"$context.responseLength","user":"$context.authorizer.claims.sub"}'))  # fmt: skip
    assert ids(found) == ["W9105"]
    assert "$context.protocol, $context.responseLength," in found[0][1]
    assert "authorizer" not in found[0][1]  # a Lambda authorizer's own context keys are allowed


def test_logging_without_an_account_role_in_the_template_is_a_warning(findings: Findings) -> None:
    logged = websocket_template(DefaultRouteSettings={"LoggingLevel": "ERROR", **THROTTLED})
    found = findings(copy.deepcopy(logged))
    assert ids(found) == ["W9106"] and "AWS::ApiGateway::Account" in found[0][1]
    found = findings(with_account(copy.deepcopy(logged), depends=False))
    assert ids(found) == ["W9106"] and "DependsOn" in found[0][1]
    assert ids(findings(with_account(logged))) == []


def test_a_stage_that_does_not_log_needs_no_account_role(findings: Findings) -> None:
    assert ids(findings(websocket_template(DefaultRouteSettings={"LoggingLevel": "OFF", **THROTTLED}))) == []


def test_the_dependency_on_the_account_may_be_indirect(findings: Findings) -> None:
    template = with_account(
        websocket_template(DefaultRouteSettings={"LoggingLevel": "INFO", **THROTTLED}), depends=False
    )
    template["Resources"]["AccountReady"] = {
        "Type": "AWS::CloudFormation::WaitConditionHandle",
        "DependsOn": ["Account"],
    }
    template["Resources"]["Stage"]["DependsOn"] = ["AccountReady"]
    assert ids(findings(template)) == []
