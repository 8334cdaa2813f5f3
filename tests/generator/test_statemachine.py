"""The rollout state machine: generated from the plan, statically sound, and its template scoped."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from generator import asl_checks
from generator.rollout_stack import template_parameters
from generator.statemachine import MAX_POLLS, definition, output_path
from rollout.plan import ENDPOINT_UPDATE, STACK_INPUTS, STACK_TEMPLATES


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
    broken["States"]["ComputeStackDecide"]["Choices"] = broken["States"]["ComputeStackDecide"][
        "Choices"
    ][1:]
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
    assert (
        compute["ManagementEndpoint"] == "$.stacks.compute.parameters.ManagementEndpoint"
    )  # from the input
    carried = {p["ParameterKey"]: p["ParameterValue.$"] for p in
               machine["States"]["CarryComputeCreateChangeSet"]["Parameters"]["Parameters"]}  # fmt: skip
    assert carried[ENDPOINT_UPDATE.carried_by[1]] == "$.endpoint.value"
    assert machine["States"]["ComputeOutputs"]["Next"] == "WebsocketDescribe"


def test_every_task_retries_and_every_wait_is_bounded(machine: dict[str, Any]) -> None:
    for name, state in machine["States"].items():
        if state["Type"] == "Task":
            assert state["Retry"], name
            assert state["Resource"].startswith("arn:aws:states:::aws-sdk:"), name
        if name.endswith("Decide"):
            bound = state["Choices"][0]
            assert (
                bound["Variable"].startswith("$.polls.")
                and bound["NumericGreaterThanEquals"] == MAX_POLLS
            )


def test_endpoint_is_merged_with_the_revision_and_skipped_when_set(machine: dict[str, Any]) -> None:
    update = machine["States"]["Function0Update"]["Parameters"]
    assert update["RevisionId.$"] == "$.work.Function0.revision"
    assert update["Environment"]["Variables.$"].startswith(
        "States.JsonMerge($.work.Function0.variables"
    )
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
    assert machine["Definition"]["StartAt"] == "ComputeDescribe"  # an object, so cfn-lint checks it
    assert set(machine["DefinitionSubstitutions"]) == {"CloudFormationRoleArn"}
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    bucket = of_type(rollout, "AWS::S3::Bucket")["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ]
    assert bucket["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"]
    (deny,) = of_type(rollout, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {
        "Bool": {"aws:SecureTransport": False}
    }


def test_rollout_roles_are_scoped(templates: dict[str, Any]) -> None:
    resources = templates["rollout"]["Resources"]
    machine_role = resources["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    text = json.dumps(machine_role)
    (cloudformation,) = [s for s in machine_role if "cloudformation:CreateChangeSet" in s["Action"]]
    assert all("${ComputeStackName}" in json.dumps(r) or "${WebSocketStackName}" in json.dumps(r)
               or "changeSet/rollout-" in json.dumps(r) for r in cloudformation["Resource"])  # fmt: skip
    (pass_role,) = [s for s in machine_role if s["Action"] == ["iam:PassRole"]]
    assert pass_role["Resource"] == [{"Fn::GetAtt": ["CloudFormationRole", "Arn"]}]
    wildcard = [s for s in machine_role if s["Resource"] == ["*"]]
    assert len(wildcard) == 1 and all(
        a.startswith(("logs:", "xray:")) for a in wildcard[0]["Action"]
    )
    assert "lambda:UpdateFunctionConfiguration" in text and "${NamePrefix}-websocket-*" in text
    service_role = json.dumps(resources["CloudFormationRole"]["Properties"])
    assert '"*"' not in service_role
