"""E9110-E9112: the Rules section, the template's size, and a CloudFormation service role against
the resource providers of the stacks it deploys."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.lint.conftest import Findings, as_json, ids, pack_findings, websocket_template

OUT = REPO / "templates_out"
DEPLOYED = {"E9112": {"templates": f"{OUT / 'compute.yaml'},{OUT / 'websocket.yaml'}",
                      "exceptions": str(REPO / "gates" / "permission_exceptions.yaml")}}  # fmt: skip


def with_rule(assertion: Any) -> dict[str, Any]:
    template = websocket_template()
    template["Rules"] = {"StageNamed": {"Assertions": [{"Assert": assertion, "AssertDescription": "name the stage"}]}}
    return template


def test_a_rule_using_a_function_rules_refuse_is_an_error(findings: Findings) -> None:
    found = findings(with_rule({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", [{"Ref": "StageName"}]]}, ""]}]}))
    assert ids(found) == ["E9110"] and "Fn::Join" in found[0][1]
    assert ids(findings(with_rule({"Fn::Equals": [{"Fn::Sub": "${StageName}"}, "prod"]}))) == ["E9110"]


def test_rules_using_only_rule_functions_pass(findings: Findings) -> None:
    cdk_bootstrap_check = {"Fn::Not": [{"Fn::Contains": [["1", "2", "3", "4", "5"], {"Ref": "StageName"}]}]}
    assert ids(findings(with_rule(cdk_bootstrap_check))) == []


def test_a_template_over_the_template_body_limit_is_a_warning(findings: Findings) -> None:
    template = websocket_template()
    small = as_json(template)
    assert ids(findings(small)) == []
    template["Metadata"] = {"Notes": ["x" * 1000] * 52}
    found = findings(as_json(template))
    assert ids(found) == ["W9111"] and "TemplateURL" in found[0][1]


def test_only_a_template_over_the_body_limit_answers_the_size_warning_in_its_own_metadata() -> None:
    """compute.yaml is over the limit and is deployed by TemplateURL; it says so, and nothing else is
    hidden. rollout.yaml (no longer a per-behaviour state machine) fits a TemplateBody and says nothing."""
    for stem, over in (("compute", True), ("rollout", False)):
        template = yaml.safe_load((OUT / f"{stem}.yaml").read_text())
        assert ((OUT / f"{stem}.yaml").stat().st_size > 51_200) is over
        ignored = template.get("Metadata", {}).get("cfn-lint", {}).get("config")
        assert ignored == ({"ignore_checks": ["W9111"]} if over else None)


def test_the_service_role_of_the_rollout_template_allows_what_its_stacks_call() -> None:
    assert pack_findings(OUT / "rollout.yaml", DEPLOYED) == []


def test_a_service_role_missing_a_providers_permission_is_an_error(tmp_path: Path) -> None:
    """Without iam:ListRolePolicies every rollback of a role fails (ROLLBACK_FAILED)."""
    rollout = yaml.safe_load((OUT / "rollout.yaml").read_text())
    role = rollout["Resources"]["CloudFormationRole"]["Properties"]
    statement = next(
        s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if "iam:ListRolePolicies" in s["Action"]
    )
    statement["Action"].remove("iam:ListRolePolicies")
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(rollout))
    found = pack_findings(path, DEPLOYED)
    assert ids(found) == ["E9112"]
    assert "AWS::IAM::Role" in found[0][1] and "iam:ListRolePolicies" in found[0][1]


def test_without_its_exceptions_the_unused_features_permissions_are_reported(tmp_path: Path) -> None:
    found = pack_findings(OUT / "rollout.yaml", {"E9112": {"templates": DEPLOYED["E9112"]["templates"]}})
    assert "E9112" in ids(found)
    assert any("lambda:GetLayerVersion" in message for _, message in found)


def test_an_unconfigured_service_role_rule_checks_nothing(findings: Findings) -> None:
    template = websocket_template()
    role = copy.deepcopy(template["Resources"]["Role"])
    role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = {
        "Service": "cloudformation.amazonaws.com"
    }
    template["Resources"]["DeployRole"] = role
    assert ids(findings(template)) == []
    deployed = {"E9112": {"templates": str(OUT / "websocket.yaml")}}
    found = findings(template, deployed)  # a role with no policy at all: every provider call is missing
    assert set(ids(found)) == {"E9112"}
    assert any("AWS::ApiGatewayV2::Api" in message and "apigateway:POST" in message for _, message in found)


def test_a_cfn_lint_without_provider_schemas_is_told_to_upgrade(
    findings: Findings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Older cfn-lint (before 1.58) bundles provider schemas elsewhere: say so instead of crashing."""
    import cfnlint

    from cfnlint_websocket import _support

    fake = tmp_path / "cfnlint" / "__init__.py"
    fake.parent.mkdir()
    fake.write_text("")
    monkeypatch.setattr(cfnlint, "__file__", str(fake))
    _support.provider_permissions.cache_clear()
    template = websocket_template()
    template["Resources"]["Role"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = {
        "Service": "cloudformation.amazonaws.com"
    }
    try:
        found = findings(template, {"E9112": {"templates": str(OUT / "websocket.yaml")}})
    finally:
        monkeypatch.undo()
        _support.provider_permissions.cache_clear()
    assert ids(found) == ["E9112"] and "upgrade cfn-lint" in found[0][1]
