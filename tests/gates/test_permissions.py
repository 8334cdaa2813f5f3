"""The permission gate: clean on the generated roles, and failing, by name, on each hole the
issue found in the earlier roles; its evaluator matches IAM's rules, not moto's shortcuts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gates import permissions
from generator.build import build_all


@pytest.fixture(scope="module")
def rollout() -> dict[str, Any]:
    return build_all(["rollout"])["rollout"].to_dict()


def without(rollout: dict[str, Any], role: str, action: str) -> dict[str, Any]:
    """The rollout template with `action` taken out of `role`'s main policy."""
    changed = copy.deepcopy(rollout)
    for statement in changed["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != action]
    changed["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] = [
        s for s in changed["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] if s["Action"]
    ]
    return changed


def test_the_generated_roles_pass() -> None:
    report = permissions.run()
    assert report.misses == [] and report.unused_exceptions == []
    assert report.checked > 4000 and set(report.by_option) == {o.name for o in permissions.OPTIONS}


@pytest.mark.parametrize(("role", "action", "expected"), [
    ("CloudFormationRole", "logs:DescribeLogGroups", "logs:DescribeLogGroups on *"),
    ("CloudFormationRole", "iam:ListRolePolicies", "HandlersRole (AWS::IAM::Role) delete: iam:ListRolePolicies"),
    ("CloudFormationRole", "events:ListTargetsByRule", "CleanupScheduleRule (AWS::Events::Rule) read: events:ListTargetsByRule"),
    ("CloudFormationRole", "ec2:DescribeSubnets", "ConnectFunction (AWS::Lambda::Function) create: ec2:DescribeSubnets on *"),
    # The runner's role is generated from the steps' declared calls: take one out and the gate names it.
    ("RunnerRole", "s3:GetObject", "compute step: s3:GetObject"),
    ("RunnerRole", "iam:PassRole", "websocket step: iam:PassRole"),
    ("RunnerRole", "cloudwatch:DescribeAlarms", "bake step: cloudwatch:DescribeAlarms"),
    ("StateMachineRole", "lambda:InvokeFunction", "every Task task: lambda:InvokeFunction"),
])  # fmt: skip
def test_a_missing_permission_fails_naming_resource_handler_action_and_arn(
    rollout: dict[str, Any], role: str, action: str, expected: str
) -> None:
    report = permissions.run(rollout_override=without(rollout, role, action))
    assert any(expected in miss.explain() for miss in report.misses), [m.explain() for m in report.misses][:5]


def test_log_group_tagging_needs_the_arn_without_the_trailing_wildcard(
    rollout: dict[str, Any],
) -> None:
    plain = {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        "/aws/apigateway/${NamePrefix}-websocket-api"
    }  # what the earlier role lacked
    changed = copy.deepcopy(rollout)
    for statement in changed["Resources"]["CloudFormationRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]:
        statement["Resource"] = [r for r in statement["Resource"] if r != plain]
    report = permissions.run(rollout_override=changed)
    tagging = {m.action for m in report.misses if "AccessLogGroup" in m.resource}
    assert tagging == {"logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource"}


def without_conditional(rollout: dict[str, Any], condition: str) -> dict[str, Any]:
    """The rollout template without the inline policies that exist under `condition`."""
    changed = copy.deepcopy(rollout)
    for role in ("CloudFormationRole", "RunnerRole"):
        policies = changed["Resources"][role]["Properties"]["Policies"]
        changed["Resources"][role]["Properties"]["Policies"] = [
            p for p in policies if p.get("Fn::If", [None])[0] != condition
        ]
    return changed


def test_the_environment_key_is_checked_only_under_that_option(rollout: dict[str, Any]) -> None:
    report = permissions.run(rollout_override=without_conditional(rollout, "EnvironmentKeyGiven"))
    assert {m.action.split(":")[0] for m in report.misses} == {"kms"}
    assert all(m.arn == permissions.ENVIRONMENT_KEY for m in report.misses)


def test_endpoint_consumers_need_their_functions_and_roles_and_nothing_wider(rollout: dict[str, Any]) -> None:
    report = permissions.run(rollout_override=without_conditional(rollout, "ConsumersGiven"))
    assert {(m.role, m.action) for m in report.misses} == {
        ("RunnerRole", "lambda:GetFunctionConfiguration"), ("RunnerRole", "lambda:UpdateFunctionConfiguration"),
        ("CloudFormationRole", "iam:PutRolePolicy"), ("CloudFormationRole", "iam:DeleteRolePolicy"),
        ("CloudFormationRole", "iam:GetRolePolicy")}  # fmt: skip
    assert {m.arn for m in report.misses} == {*permissions.CONSUMER_FUNCTIONS,
                                              f"arn:aws:iam::123456789012:role/{permissions.CONSUMER_ROLES[0]}"}  # fmt: skip


def test_an_exception_without_a_reason_is_refused_and_an_unused_one_fails(tmp_path: Path) -> None:
    no_reason = tmp_path / "no_reason.yaml"
    no_reason.write_text("- {type: AWS::Lambda::Function, actions: [lambda:GetLayerVersion]}\n")
    with pytest.raises(ValueError, match="needs a reason"):
        permissions.load_exceptions(no_reason)
    extra = tmp_path / "extra.yaml"
    extra.write_text(permissions.EXCEPTIONS_FILE.read_text()
                     + "- {type: AWS::SNS::Topic, actions: [sns:Publish], reason: nothing uses it}\n")  # fmt: skip
    assert permissions.run(exceptions_path=extra).unused_exceptions == ["AWS::SNS::Topic: sns:publish"]


STATEMENT = {
    "Effect": "Allow",
    "Action": ["logs:CreateLogGroup"],
    "Resource": ["arn:aws:logs:*:1:log-group:/a.b?:*"],
}


@pytest.mark.parametrize(("action", "resource", "expected"), [
    ("logs:CreateLogGroup", "arn:aws:logs:eu-west-1:1:log-group:/a.bc:*", True),
    ("LOGS:createloggroup", "arn:aws:logs:eu-west-1:1:log-group:/a.bc:*", True),  # actions ignore case
    ("logs:CreateLogGroup", "arn:aws:logs:eu-west-1:1:log-group:/aXbc:*", False),  # '.' is no wildcard
    ("logs:CreateLogGroup", "arn:aws:logs:eu-west-1:1:log-group:/a.bcd:*", False),  # '?' is one character
    ("logs:CreateLogGroup", "ARN:AWS:LOGS:eu-west-1:1:log-group:/a.bc:*", False),  # resources keep case
])  # fmt: skip
def test_the_evaluator_matches_as_iam_does(action: str, resource: str, expected: bool) -> None:
    document = {"Version": "2012-10-17", "Statement": [STATEMENT]}
    assert permissions.allowed([document], action, resource) is expected


def test_deny_wins_and_not_resource_is_refused() -> None:
    deny = {"Effect": "Deny", "Action": "logs:*", "Resource": "*"}
    assert not permissions.allowed([{"Statement": [STATEMENT, deny]}], "logs:CreateLogGroup",
                                   "arn:aws:logs:eu-west-1:1:log-group:/a.bc:*")  # fmt: skip
    with pytest.raises(ValueError, match="NotResource"):
        permissions.allowed(
            [{"Statement": [{"Effect": "Allow", "Action": "*", "NotResource": "x"}]}],
            "s3:GetObject",
            "y",
        )


def _main_statements(rollout: dict[str, Any], role: str = "CloudFormationRole") -> list[dict[str, Any]]:
    return rollout["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def test_tagging_a_key_at_creation_needs_a_statement_not_restricted_by_resource_tags(rollout: dict[str, Any]) -> None:
    """The earlier role: kms:TagResource only under aws:ResourceTag, which a key being created lacks."""
    changed = copy.deepcopy(rollout)
    for statement in _main_statements(changed):
        if statement["Resource"] == ["*"] and "aws:RequestTag/Application" in str(statement.get("Condition")):
            statement["Action"] = [a for a in statement["Action"] if a != "kms:TagResource"]
    report = permissions.run(rollout_override=changed)
    assert {(m.resource, m.handler, m.action) for m in report.misses} == {
        ("compute AlarmTopicKey (AWS::KMS::Key)", "create", "kms:TagResource")
    }
    assert all("aws:RequestTag/Application" in m.explain() and "ResourceTag" not in m.explain() for m in report.misses)


def test_attaching_a_managed_policy_is_decided_on_the_policy_it_names(rollout: dict[str, Any]) -> None:
    changed = copy.deepcopy(rollout)
    for statement in _main_statements(changed):
        if "iam:PolicyARN" in str(statement.get("Condition")):
            arns = statement["Condition"]["ArnEquals"]["iam:PolicyARN"]
            statement["Condition"]["ArnEquals"]["iam:PolicyARN"] = [a for a in arns if "ENIManagement" in str(a)]
    report = permissions.run(rollout_override=changed)
    missed = {(m.resource, m.action, dict(m.context)["iam:PolicyARN"]) for m in report.misses}
    push = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    assert missed == {("compute ApiGatewayCloudWatchRole (AWS::IAM::Role)", a, push)
                      for a in ("iam:AttachRolePolicy", "iam:DetachRolePolicy")}  # fmt: skip


def test_requests_carry_the_keys_their_caller_sends() -> None:
    report = permissions.run()
    assert {"aws:RequestTag/*", "aws:ResourceTag/*", "aws:TagKeys", "iam:PassedToService", "iam:PolicyARN",
            "kms:ViaService", "aws:CalledVia", "cloudformation:RoleArn"} <= set(report.condition_keys)  # fmt: skip


def test_the_second_evaluator_agrees_and_a_disagreement_names_the_request(rollout: dict[str, Any]) -> None:
    report = permissions.run(second=True)
    assert report.disagreements == [] and report.misses == []
    check = permissions.Check(
        "CloudFormationRole", "compute AlarmTopicKey (AWS::KMS::Key)", "create", "kms:TagResource",
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        (("aws:RequestTag/Application", "CareConnect"),),
    )  # fmt: skip
    documents = permissions.role_documents(rollout, permissions.STACK_NAMES, "CloudFormationRole")
    flipped = [("set", check, False)]  # the gate said no; iam-simulate allows it
    found = permissions.second_opinion(flipped, {"set": documents}, permissions.Report())
    assert found == [f"{check.explain()}: the gate denies, iam-simulate says Allowed"]
