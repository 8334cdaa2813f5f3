"""The websocket template: what it creates, how tightly it is scoped, what it outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from generator.intrinsics import Evaluator
from generator.model import LOG_RETENTION_DAYS

ROUTES = {"$connect": "Connect", "$disconnect": "Disconnect", "$default": "Default"}
# The original module's fields less protocol, responseLength and integrationErrorMessage, which
# WebSocket APIs do not define.
ORIGINAL_LOG_FIELDS = [
    "requestId", "sourceIp", "requestTime", "routeKey", "status", "errorMessage", "connectionId", "eventType",
]  # fmt: skip
# $context variables of WebSocket APIs, from "Configure logging for WebSocket APIs in API Gateway"
# (docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html), the ones of
# interest here.
WEBSOCKET_CONTEXT = {
    "apiId", "connectedAt", "connectionId", "domainName", "error.message", "error.messageString",
    "error.responseType", "eventType", "extendedRequestId", "identity.sourceIp", "identity.userAgent",
    "integration.error", "integration.integrationStatus", "integration.latency", "integration.requestId",
    "integration.status", "integrationLatency", "messageId", "requestId", "requestTime", "requestTimeEpoch",
    "routeKey", "stage", "status",
}  # fmt: skip


@pytest.fixture
def ws(templates: dict[str, Any]) -> dict[str, Any]:
    return templates["websocket"]


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def test_api_is_websocket_routing_on_action(ws: dict[str, Any]) -> None:
    (api,) = of_type(ws, "AWS::ApiGatewayV2::Api").values()
    props = api["Properties"]
    assert props["ProtocolType"] == "WEBSOCKET"
    assert props["RouteSelectionExpression"] == "$request.body.action"
    assert props["Description"] and props["Tags"]
    assert Evaluator(ws).eval(props["Name"]) == "cc-websocket-api"
    assert Evaluator(ws, {"NamePrefix": "staging"}).eval(props["Name"]) == "staging-websocket-api"


def test_each_route_has_its_own_proxy_integration_to_its_function(ws: dict[str, Any]) -> None:
    routes = of_type(ws, "AWS::ApiGatewayV2::Route")
    integrations = of_type(ws, "AWS::ApiGatewayV2::Integration")
    assert sorted(r["Properties"]["RouteKey"] for r in routes.values()) == sorted(ROUTES)
    given = {
        f"{stem}FunctionArn": f"arn:aws:lambda:eu-west-1:123456789012:function:fn-{stem}" for stem in ROUTES.values()
    }
    ev = Evaluator(ws, given)
    targets = set()
    for route in routes.values():
        props = route["Properties"]
        assert ev.eval(props["AuthorizationType"]) == "NONE"  # by default (the authorizer is an option)
        target = ev.eval(props["Target"])
        integration_id = target.removeprefix("integrations/")
        integration = integrations[integration_id.removesuffix("-id")]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["IntegrationMethod"] == "POST"
        stem = ROUTES[props["RouteKey"]]
        assert ev.eval(integration["IntegrationUri"]) == (
            "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/"
            f"arn:aws:lambda:eu-west-1:123456789012:function:fn-{stem}/invocations"
        )
        assert int(ev.eval(integration["TimeoutInMillis"])) <= 29000
        targets.add(integration_id)
    assert len(targets) == 3


def test_function_arns_default_to_the_original_functions_live_aliases(ws: dict[str, Any]) -> None:
    permissions = of_type(ws, "AWS::Lambda::Permission")
    names = {Evaluator(ws).eval(p["Properties"]["FunctionName"]) for p in permissions.values()}
    expected = {
        f"arn:aws:lambda:eu-west-1:123456789012:function:cc-websocket-{s}:live"
        for s in ("connect", "disconnect", "default")
    }
    assert names == expected  # the permission is on the alias the integration invokes
    uris = {
        Evaluator(ws).eval(i["Properties"]["IntegrationUri"])
        for i in of_type(ws, "AWS::ApiGatewayV2::Integration").values()
    }
    assert {uri.split("/functions/")[1].removesuffix("/invocations") for uri in uris} == expected


def test_integration_timeout_parameter_is_bounded_by_api_gateway_limit(ws: dict[str, Any]) -> None:
    spec = ws["Parameters"]["IntegrationTimeoutMillis"]
    assert spec["MaxValue"] == 29000 and spec["Default"] == 29000 and spec["MinValue"] == 50


def test_stage_defaults_reproduce_the_module_but_without_data_trace(ws: dict[str, Any]) -> None:
    ((_name, stage),) = of_type(ws, "AWS::ApiGatewayV2::Stage").items()
    props = stage["Properties"]
    ev = Evaluator(ws)
    assert ev.eval(props["StageName"]) == "prod"
    assert props["AutoDeploy"] is True
    assert set(of_type(ws, "AWS::ApiGatewayV2::Route")) <= set(stage["DependsOn"])
    settings = ev.eval(props["DefaultRouteSettings"])
    assert settings == {
        "DataTraceEnabled": False,
        "DetailedMetricsEnabled": True,
        "LoggingLevel": "INFO",
        "ThrottlingRateLimit": "100",
        "ThrottlingBurstLimit": "500",
    }
    traced = Evaluator(ws, {"DataTraceEnabled": "true"}).eval(props["DefaultRouteSettings"])
    assert traced["DataTraceEnabled"] is True
    assert ws["Parameters"]["LoggingLevel"]["AllowedValues"] == ["OFF", "ERROR", "INFO"]


def test_stage_name_refuses_default_and_throttles_refuse_zero(ws: dict[str, Any]) -> None:
    import re

    pattern = ws["Parameters"]["StageName"]["AllowedPattern"]
    assert re.fullmatch(pattern, "prod") and not re.fullmatch(pattern, "$default")
    assert ws["Parameters"]["ThrottlingRateLimit"]["MinValue"] >= 1
    assert ws["Parameters"]["ThrottlingBurstLimit"]["MinValue"] >= 1


def test_access_log_is_json_with_request_id_first_and_original_fields(ws: dict[str, Any]) -> None:
    (stage,) = of_type(ws, "AWS::ApiGatewayV2::Stage").values()
    log_format = stage["Properties"]["AccessLogSettings"]["Format"]
    fields = json.loads(log_format)
    assert next(iter(fields)) == "requestId" and fields["requestId"] == "$context.requestId"
    assert set(ORIGINAL_LOG_FIELDS) <= set(fields)
    used = {value.removeprefix("$context.") for value in fields.values()}
    assert used <= WEBSOCKET_CONTEXT, used - WEBSOCKET_CONTEXT
    assert len(log_format.encode()) <= 3 * 1024
    assert stage["Properties"]["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}


def test_log_group_name_and_retention(ws: dict[str, Any]) -> None:
    group = ws["Resources"]["AccessLogGroup"]["Properties"]
    assert Evaluator(ws).eval(group["LogGroupName"]) == "/aws/apigateway/cc-websocket-api"
    assert Evaluator(ws).eval(group["RetentionInDays"]) == "30"
    assert ws["Parameters"]["LogRetentionInDays"]["AllowedValues"] == list(LOG_RETENTION_DAYS)
    assert 31 not in LOG_RETENTION_DAYS and 3653 in LOG_RETENTION_DAYS
    assert Evaluator(ws).eval(group["KmsKeyId"]) is None
    key = "arn:aws:kms:eu-west-1:123456789012:key/abcd-1234"
    assert Evaluator(ws, {"LogsKmsKeyArn": key}).eval(group["KmsKeyId"]) == key


def test_the_account_is_set_to_the_role_given_and_the_stage_waits_for_it(ws: dict[str, Any]) -> None:
    account = of_type(ws, "AWS::ApiGateway::Account")
    ((account_name, account_res),) = account.items()
    assert account_res["Properties"]["CloudWatchRoleArn"] == {"Ref": "ApiGatewayCloudWatchRoleArn"}
    assert account_res["Condition"] == "SetAccountRole"
    assert Evaluator(ws).condition("SetAccountRole") is False  # no role given: the account is left as it is
    role = "arn:aws:iam::123456789012:role/cc-websocket-compute-ApiGatewayCloudWatchRole-A1"
    assert Evaluator(ws, {"ApiGatewayCloudWatchRoleArn": role}).condition("SetAccountRole") is True
    assert of_type(ws, "AWS::IAM::Role") == {}  # the role is the compute stack's, created a stack earlier
    (stage,) = of_type(ws, "AWS::ApiGatewayV2::Stage").values()
    handle = next(
        d for d in stage["DependsOn"] if ws["Resources"][d]["Type"] == "AWS::CloudFormation::WaitConditionHandle"
    )
    assert ws["Resources"][handle]["Metadata"]["AccountRoleSet"]["Fn::If"][1] == {"Ref": account_name}


@pytest.mark.parametrize("route_key", list(ROUTES))
def test_permission_source_arn_is_this_api_stage_and_route(ws: dict[str, Any], route_key: str) -> None:
    permission = ws["Resources"][f"{ROUTES[route_key]}InvokePermission"]["Properties"]
    ev = Evaluator(ws, physical_ids={"Api": "a1b2c3"}, parameters={"StageName": "beta"})
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["Action"] == "lambda:InvokeFunction"
    assert ev.eval(permission["SourceArn"]) == f"arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/beta/{route_key}"
    assert "*" not in ev.eval(permission["SourceArn"])


def test_manage_connections_grant_is_scoped_to_this_stage(ws: dict[str, Any]) -> None:
    policy = ws["Resources"]["ManageConnectionsPolicy"]
    ev = Evaluator(ws, physical_ids={"Api": "a1b2c3"})
    props = ev.eval(policy["Properties"])
    assert props["Roles"] == ["cc-websocket-handlers"]
    assert Evaluator(ws, {"HandlersRoleName": "other"}).eval(policy["Properties"]["Roles"]) == ["other"]
    (statement,) = props["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["execute-api:ManageConnections"]
    base = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod"
    assert sorted(statement["Resource"]) == sorted(
        f"{base}/{method}/@connections/*" for method in ("POST", "GET", "DELETE")
    )


def test_outputs_resolve_to_the_documented_urls(ws: dict[str, Any]) -> None:
    outputs = ws["Outputs"]
    assert set(outputs) >= {
        "WebSocketApiId", "WebSocketStageName", "WebSocketManagementEndpoint",
        "WebSocketStageInvokeUrl", "WebSocketApiExecutionArn",
    }  # fmt: skip
    ev = Evaluator(
        ws,
        physical_ids={"Api": "a1b2c3", "Stage": "prod"},
        pseudo={
            "AWS::Region": "cn-north-1",
            "AWS::Partition": "aws-cn",
            "AWS::URLSuffix": "amazonaws.com.cn",
        },
    )
    values = {k: ev.eval(v["Value"]) for k, v in outputs.items()}
    assert values["WebSocketApiId"] == "a1b2c3"
    assert values["WebSocketStageName"] == "prod"
    assert values["WebSocketManagementEndpoint"] == "https://a1b2c3.execute-api.cn-north-1.amazonaws.com.cn/prod"
    assert values["WebSocketStageInvokeUrl"] == "wss://a1b2c3.execute-api.cn-north-1.amazonaws.com.cn/prod"
    assert values["WebSocketApiExecutionArn"] == "arn:aws-cn:execute-api:cn-north-1:123456789012:a1b2c3"


def test_the_account_is_set_after_other_iam_work(ws: dict[str, Any]) -> None:
    account = ws["Resources"]["ApiGatewayAccount"]
    assert "ManageConnectionsPolicy" in account["DependsOn"]
    text = (
        ws["Parameters"]["LoggingLevel"]["Description"] + ws["Parameters"]["ApiGatewayCloudWatchRoleArn"]["Description"]
    )
    assert "unless OFF" not in text and "Access logging is always on" in text


def test_endpoint_consumers_roles_get_the_same_grant_only_when_given(ws: dict[str, Any]) -> None:
    consumers = ws["Resources"]["ConsumersManageConnectionsPolicy"]
    assert consumers["Condition"] == "ConsumerRolesGiven"
    assert not Evaluator(ws).condition("ConsumerRolesGiven")  # default: no consumer, no policy
    ev = Evaluator(ws, {"ManageConnectionsRoleNames": "backend-role,reports-role"}, physical_ids={"Api": "a1b2c3"})
    assert ev.condition("ConsumerRolesGiven")
    props = ev.eval(consumers["Properties"])
    assert props["Roles"] == ["backend-role", "reports-role"]
    ours = ev.eval(ws["Resources"]["ManageConnectionsPolicy"]["Properties"])
    assert props["PolicyDocument"] == ours["PolicyDocument"]  # this API and stage only, nothing wider


def test_the_connect_authorizer_is_off_by_default_and_guards_only_connect_when_given(ws: dict[str, Any]) -> None:
    authorizer_arn = "arn:aws:lambda:eu-west-1:123456789012:function:careconnect-ws-authorizer"
    for given in ("", authorizer_arn):
        ev = Evaluator(ws, {"ConnectAuthorizerFunctionArn": given})
        routes = {
            r["Properties"]["RouteKey"]: ev.eval(r["Properties"])
            for r in of_type(ws, "AWS::ApiGatewayV2::Route").values()
        }
        authorizers = {
            k: v for k, v in of_type(ws, "AWS::ApiGatewayV2::Authorizer").items() if ev.condition(v["Condition"])
        }
        expected = {"$connect": "CUSTOM" if given else "NONE", "$disconnect": "NONE", "$default": "NONE"}
        assert {k: r["AuthorizationType"] for k, r in routes.items()} == expected
        if not given:
            assert authorizers == {} and "AuthorizerId" not in routes["$connect"]
            continue
        ((logical, authorizer),) = authorizers.items()
        props = ev.eval(authorizer["Properties"])
        assert routes["$connect"]["AuthorizerId"] == ev.eval({"Ref": logical})
        assert props["AuthorizerType"] == "REQUEST" and props["IdentitySource"] == ["route.request.querystring.token"]
        assert props["AuthorizerUri"].endswith(f"/functions/{authorizer_arn}/invocations")
