"""Linting with the rule pack the way a team uses it: cfn-lint's own API with the pack's folder
as an appended rules path, on template files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint_file

from tests.conftest import REPO

PACK = REPO / "cfnlint_websocket"
FIXTURES = Path(__file__).with_name("fixtures")
PACK_IDS = ("E91", "W91")

Findings = Callable[..., list[tuple[str, str]]]


def pack_findings(path: Path, configure: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    """(rule id, message) of every pack rule that matches the template file."""
    # cfn-lint keeps loaded rules between calls in one process: configure E9112 every time (to its
    # defaults when the test does not), so one test's configuration never leaks into the next.
    config: dict[str, Any] = {"append_rules": [str(PACK)], "regions": ["us-east-1"],
                              "configure_rules": {"E9112": {"templates": "", "exceptions": ""}, **(configure or {})}}  # fmt: skip
    matches = lint_file(path, config=config)  # type: ignore[arg-type]
    return [(m.rule.id, m.message) for m in matches if m.rule.id.startswith(PACK_IDS)]


@pytest.fixture
def findings(tmp_path: Path) -> Findings:
    """Write a template (dict, as YAML; str as is) and lint it with the pack."""
    count = 0

    def run(
        template: dict[str, Any] | str, configure: dict[str, dict[str, Any]] | None = None
    ) -> list[tuple[str, str]]:
        nonlocal count
        count += 1
        path = tmp_path / f"template{count}.yaml"
        path.write_text(template if isinstance(template, str) else yaml.safe_dump(template, sort_keys=False))
        return pack_findings(path, configure)

    return run


def ids(found: list[tuple[str, str]]) -> list[str]:
    return sorted(rule for rule, _ in found)


def websocket_template(**stage: Any) -> dict[str, Any]:
    """A hand-written WebSocket API: one function, $connect, a tight permission and a stage."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"StageName": {"Type": "String", "Default": "prod"}},
        "Resources": {
            "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
                "Name": "chat", "ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"Service": "lambda.amazonaws.com"}}]}}},
            "Function": {"Type": "AWS::Lambda::Function", "Properties": {
                "Runtime": "python3.13", "Handler": "index.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"ZipFile": "def handler(event, context):\n    return {'statusCode': 200}\n"}}},
            "Permission": {"Type": "AWS::Lambda::Permission", "Properties": {
                "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "Function"},
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                         "${Api}/${StageName}/$connect"}}},
            "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {
                "ApiId": {"Ref": "Api"}, "StageName": {"Ref": "StageName"}, "AutoDeploy": True, **stage}},
        },
    }  # fmt: skip


def as_json(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=1)
