"""E9107-E9109: who may invoke a route's function, and who may manage every connection; in
hand-written, CDK-style (Fn::Join) and SAM (Transform) templates."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from samtranslator.translator.transform import transform

from tests.lint.conftest import Findings, ids, websocket_template

ARN = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}"


def with_source_arn(source_arn: Any) -> dict[str, Any]:
    template = websocket_template()
    properties = template["Resources"]["Permission"]["Properties"]
    if source_arn is None:
        del properties["SourceArn"]
    else:
        properties["SourceArn"] = source_arn
    return template


def cdk_join(*parts: Any) -> dict[str, Any]:
    """How CDK writes an ARN: Fn::Join of literal pieces and Refs."""
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":execute-api:", {"Ref": "AWS::Region"}, ":",
                              {"Ref": "AWS::AccountId"}, ":", *parts]]}  # fmt: skip


def test_invoke_permission_without_source_arn_is_an_error(findings: Findings) -> None:
    found = findings(with_source_arn(None))
    assert ids(found) == ["E9107"] and "any API in any account" in found[0][1]


def test_invoke_permission_for_every_api_is_an_error(findings: Findings) -> None:
    assert ids(findings(with_source_arn({"Fn::Sub": f"{ARN}:*/prod/$connect"}))) == ["E9107"]
    assert ids(findings(with_source_arn("arn:aws:execute-api:*:123456789012:abc123/prod/$connect"))) == ["E9107"]


def test_invoke_permission_open_to_any_stage_or_route_is_a_warning(findings: Findings) -> None:
    found = findings(with_source_arn({"Fn::Sub": f"{ARN}:${{Api}}/*/*"}))
    assert ids(found) == ["W9108"] and "any stage and any route" in found[0][1]
    found = findings(with_source_arn({"Fn::Sub": f"{ARN}:${{Api}}/prod/*"}))
    assert ids(found) == ["W9108"] and "any route" in found[0][1] and "any stage" not in found[0][1]
    cdk = findings(with_source_arn(cdk_join({"Ref": "Api"}, "/*$connect")))  # CDK's WebSocketLambdaIntegration
    assert ids(cdk) == ["W9108"] and "any stage of the API" in cdk[0][1]


def test_tight_invoke_permissions_pass_however_written(findings: Findings) -> None:
    assert ids(findings(websocket_template())) == []  # Fn::Sub with the stage parameter
    assert ids(findings(with_source_arn(cdk_join({"Ref": "Api"}, "/", {"Ref": "StageName"}, "/$connect")))) == []
    conditional = {"Fn::If": ["Prod", {"Fn::Sub": f"{ARN}:${{Api}}/prod/$connect"},
                              {"Fn::Sub": f"{ARN}:${{Api}}/test/$connect"}]}  # fmt: skip
    template = with_source_arn(conditional)
    template["Conditions"] = {"Prod": {"Fn::Equals": [{"Ref": "StageName"}, "prod"]}}
    assert ids(findings(template)) == []


def test_a_conditional_wildcard_is_found_in_its_branch(findings: Findings) -> None:
    template = with_source_arn({"Fn::If": ["Prod", {"Fn::Sub": f"{ARN}:${{Api}}/prod/$connect"},
                                           {"Fn::Sub": f"{ARN}:${{Api}}/*/*"}]})  # fmt: skip
    template["Conditions"] = {"Prod": {"Fn::Equals": [{"Ref": "StageName"}, "prod"]}}
    assert ids(findings(template)) == ["W9108"]


def test_permission_rules_leave_templates_without_a_websocket_api_alone(findings: Findings) -> None:
    template = with_source_arn(None)
    template["Resources"]["Api"]["Properties"] = {"Name": "http", "ProtocolType": "HTTP"}
    template["Resources"].pop("Stage")
    assert ids(findings(template)) == []


def policy(resource: Any, action: Any = "execute-api:ManageConnections") -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]}


def with_role_policy(document: dict[str, Any]) -> dict[str, Any]:
    template = websocket_template()
    template["Resources"]["Role"]["Properties"]["Policies"] = [{"PolicyName": "push", "PolicyDocument": document}]
    return template


def test_manage_connections_on_every_api_is_an_error(findings: Findings) -> None:
    for document in (policy("*"), policy("*", "execute-api:*"), policy("arn:aws:execute-api:*:*:*/@connections/*"),
                     policy({"Fn::Sub": f"{ARN}:*/*"}, ["execute-api:Invoke", "execute-api:Manage*"])):  # fmt: skip
        found = findings(with_role_policy(document))
        assert ids(found) == ["E9109"], document
    standalone = websocket_template()
    standalone["Resources"]["Push"] = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": policy("*")}}
    assert ids(findings(standalone)) == ["E9109"]


def test_manage_connections_on_this_api_passes(findings: Findings) -> None:
    for document in (policy({"Fn::Sub": f"{ARN}:${{Api}}/${{StageName}}/POST/@connections/*"}),
                     policy({"Fn::Sub": f"{ARN}:${{Api}}/*"}),
                     policy(cdk_join({"Ref": "Api"}, "/*/*/@connections/*")),
                     policy("*", "execute-api:Invoke")):  # fmt: skip
        assert ids(findings(with_role_policy(document))) == [], document


SAM = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: chat, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Send:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Handler: index.handler
      InlineCode: "def handler(event, context): pass"
      Policies:
        - Statement:
            - Effect: Allow
              Action: execute-api:ManageConnections
              Resource: RESOURCE
"""


def test_sam_function_policies_are_checked_as_written_and_after_the_transform(
    findings: Findings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cfn-lint checks a SAM template as written (a function's Policies); SAM's transform turns them
    into the inline policies of the function's role, which is what CloudFormation deploys."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator resolves pseudo parameters
    wide = SAM.replace("RESOURCE", "'arn:aws:execute-api:*:*:*/@connections/*'")
    assert ids(findings(wide)) == ["E9109"]
    deployed = transform(yaml.safe_load(wide), {}, None)
    assert ids(findings(deployed)) == ["E9109"]
    tight = SAM.replace(
        "RESOURCE", "!Sub 'arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*'"
    )
    assert ids(findings(tight)) == []
    assert ids(findings(transform(yaml.safe_load(tight.replace("!Sub ", "")), {}, None))) == []
