"""The rollout state machine: generated from the plan, statically sound, and its template scoped."""

from __future__ import annotations

import copy
import json
from typing import Any

import cfnlint.api
import pytest

from generator import asl_checks
from generator.intrinsics import Evaluator
from generator.rollout_stack import template_parameters
from generator.stages import ENDPOINT_UPDATE, STACK_INPUTS, STACK_TEMPLATES
from generator.statemachine import MAX_POLLS, definition, output_path, substituted


@pytest.fixture(scope="module")
def machine() -> dict[str, Any]:
    return definition(template_parameters())


def test_generated_definition_passes_the_static_checks(machine: dict[str, Any]) -> None:
    assert asl_checks.problems(machine) == []
    assert machine["QueryLanguage"] == "JSONPath"


def test_checks_catch_a_missing_target_an_orphan_and_an_unbounded_loop(
    machine: dict[str, Any],
) -> None:
    broken = copy.deepcopy(machine)
    broken["States"]["ComputeExecute"]["Next"] = "Nowhere"
    broken["States"]["Orphan"] = {"Type": "Succeed"}
    broken["States"]["ComputeStackDecide"]["Choices"] = broken["States"]["ComputeStackDecide"]["Choices"][1:]
    found = asl_checks.problems(broken)
    assert "ComputeExecute goes to 'Nowhere', which does not exist" in found
    assert "Orphan is unreachable" in found
    assert any(p.startswith("loop without a bound:") and "ComputeStackWait" in p for p in found)
    assert asl_checks.problems({"StartAt": "X", "States": {}}) == ["StartAt names no state: 'X'"]


def test_stage_order_and_wiring_come_from_the_plan(machine: dict[str, Any]) -> None:
    first = next(iter(STACK_TEMPLATES))
    assert machine["StartAt"] == f"{first.title()}Describe"
    websocket = machine["States"]["WebsocketCreateChangeSet"]["Parameters"]["Parameters"]
    values = {p["ParameterKey"]: p["ParameterValue.$"] for p in websocket}
    for parameter, source in STACK_INPUTS["websocket"].items():
        assert values[parameter] == output_path(source)
    assert values["StageName"] == "$.stacks.websocket.parameters.StageName"
    compute = {p["ParameterKey"]: p["ParameterValue.$"] for p in
               machine["States"]["ComputeCreateChangeSet"]["Parameters"]["Parameters"]}  # fmt: skip
    assert compute["ManagementEndpoint"] == "$.stacks.compute.parameters.ManagementEndpoint"  # from the input
    carried = {p["ParameterKey"]: p["ParameterValue.$"] for p in
               machine["States"]["CarryComputeCreateChangeSet"]["Parameters"]["Parameters"]}  # fmt: skip
    assert carried[ENDPOINT_UPDATE.carried_by[1]] == "$.endpoint.value"
    assert machine["States"]["ComputeOutputs"]["Next"] == "WebsocketDescribe"


def test_every_task_retries_and_every_wait_is_bounded(machine: dict[str, Any]) -> None:
    for name, state in machine["States"].items():
        if state["Type"] == "Task":
            assert state["Retry"], name
            assert state["Resource"].startswith("arn:${Partition}:states:::aws-sdk:"), name
        if name.endswith("Decide"):
            bound = state["Choices"][0]
            assert bound["Variable"].startswith("$.polls.") and bound["NumericGreaterThanEquals"] == MAX_POLLS


def test_endpoint_is_merged_with_the_revision_and_skipped_when_set(machine: dict[str, Any]) -> None:
    update = machine["States"]["Function0Update"]["Parameters"]
    assert update["RevisionId.$"] == "$.work.Function0.revision"
    assert update["Environment"]["Variables.$"].startswith("States.JsonMerge($.work.Function0.variables")
    check = machine["States"]["Function0Check"]["Choices"][0]
    assert check["Next"] == "Function1Read"
    functions = [k for k in machine["States"] if k.endswith("Read") and k.startswith("Function")]
    assert len(functions) == len(ENDPOINT_UPDATE.functions_from)


def of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [r for r in template["Resources"].values() if r["Type"] == kind]
    return found


def test_rollout_template_state_machine_and_bucket(templates: dict[str, Any]) -> None:
    rollout = templates["rollout"]
    machine = of_type(rollout, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    text, substitutions = machine["DefinitionString"]["Fn::Sub"]
    assert set(substitutions) == {"Partition", "CloudFormationRoleArn"}
    assert json.loads(text)["StartAt"] == "ComputeDescribe"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    bucket = of_type(rollout, "AWS::S3::Bucket")["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert bucket["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"]
    (deny,) = of_type(rollout, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert machine["TracingConfiguration"] == {"Enabled": True}  # Control Tower CT.STEPFUNCTIONS.PR.2


def test_rollout_roles_are_scoped(templates: dict[str, Any]) -> None:
    resources = templates["rollout"]["Resources"]
    machine_role = resources["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    text = json.dumps(machine_role)
    (cloudformation,) = [s for s in machine_role if "cloudformation:CreateChangeSet" in s["Action"]]
    assert all("${ComputeStackName}" in json.dumps(r) or "${WebSocketStackName}" in json.dumps(r)
               or "changeSet/rollout-" in json.dumps(r) for r in cloudformation["Resource"])  # fmt: skip
    (pass_role,) = [s for s in machine_role if s["Action"] == ["iam:PassRole"]]
    assert pass_role["Resource"] == [{"Fn::GetAtt": ["CloudFormationRole", "Arn"]}]
    wildcard = [s for s in machine_role if s["Resource"] == ["*"]]
    assert len(wildcard) == 1 and all(a.startswith(("logs:", "xray:")) for a in wildcard[0]["Action"])
    assert "lambda:UpdateFunctionConfiguration" in text and "${NamePrefix}-websocket-*" in text
    service_statements = resources["CloudFormationRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    unscoped = [s for s in service_statements if "*" in s["Resource"] and "Condition" not in s]
    # Only reads that take no resource ARN go unscoped; creating the alarm topic's key (which has
    # no ARN yet) is allowed only with the application's tag on the request.
    assert len(unscoped) == 1 and all(a.startswith(("ec2:Describe", "logs:Describe")) for a in unscoped[0]["Action"])
    # ... and tagging it at creation (KMS: a statement not restricted to keys); retagging a key
    # another application tagged is denied.
    (create_key,) = [
        s for s in service_statements if "*" in s["Resource"] and "Condition" in s and s["Effect"] == "Allow"
    ]
    assert create_key["Action"] == ["kms:CreateKey", "kms:TagResource"]
    assert create_key["Condition"] == {"StringEquals": {"aws:RequestTag/Application": "CareConnect"}}
    (retag,) = [s for s in service_statements if s["Effect"] == "Deny"]
    assert retag["Condition"]["StringNotEquals"] == {"aws:ResourceTag/Application": "CareConnect"}


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_task_resources_name_the_stack_partition(templates: dict[str, Any], partition: str) -> None:
    machine = of_type(templates["rollout"], "AWS::StepFunctions::StateMachine")["Properties"]
    resolved = Evaluator(templates["rollout"], pseudo={"AWS::Partition": partition}).eval(machine["DefinitionString"])
    tasks = [state["Resource"] for state in json.loads(resolved)["States"].values() if state["Type"] == "Task"]
    assert tasks and all(task.startswith(f"arn:{partition}:states:::aws-sdk:") for task in tasks)
    assert "${" not in resolved


def test_cfn_lint_checks_the_definition_as_an_object(machine: dict[str, Any]) -> None:
    """The template carries a string (so the partition can vary) that cfn-lint cannot read; the
    same definition as an object, in the aws partition, passes its E3601 schema check."""
    text = substituted(machine, {"Partition": "aws", "CloudFormationRoleArn": "arn:aws:iam::123456789012:role/cfn"})
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Machine": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"RoleArn": "arn:aws:iam::123456789012:role/sfn", "Definition": json.loads(text)}}}}  # fmt: skip
    assert [str(m) for m in cfnlint.api.lint(json.dumps(template))] == []
    broken = json.loads(text)
    broken["States"]["ComputeDescribe"]["Type"] = "Taks"
    template["Resources"]["Machine"]["Properties"]["Definition"] = broken
    assert any(m.rule.id == "E3601" for m in cfnlint.api.lint(json.dumps(template)))


def test_timed_out_causes_count_checks_not_assumed_seconds(machine: dict[str, Any]) -> None:
    timed_out = machine["States"]["ComputeStackTimedOut"]
    assert "Cause" not in timed_out
    assert "checks" in timed_out["CausePath"] and "$.pollSeconds" in timed_out["CausePath"]


def test_each_stack_gets_its_own_change_set_name(machine: dict[str, Any]) -> None:
    names = {state["Parameters"]["ChangeSetName.$"] for name, state in machine["States"].items()
             if name.endswith("CreateChangeSet")}  # fmt: skip
    assert len(names) == 3  # compute, websocket, and the compute carry each differ
    creates = [s for n, s in machine["States"].items() if n.endswith("CreateChangeSet")]
    assert all("TemplateURL.$" in s["Parameters"] and "TemplateBody" not in json.dumps(s) for s in creates)
