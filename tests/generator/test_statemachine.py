"""The rollout state machine: a skeleton generated from the step list, statically sound, every
Task the runner, and its template scoped."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import cfnlint.api
import pytest

from generator import asl_checks
from generator.intrinsics import Evaluator
from generator.stages import STEP_ORDER
from generator.statemachine import definition, substituted, title
from tests.conftest import REPO


@pytest.fixture(scope="module")
def machine() -> dict[str, Any]:
    return definition()


def test_generated_definition_passes_the_static_checks(machine: dict[str, Any]) -> None:
    assert asl_checks.problems(machine) == []


def test_checks_catch_a_missing_target_and_an_orphan(machine: dict[str, Any]) -> None:
    broken = copy.deepcopy(machine)
    broken["States"]["ComputePoll"]["Next"] = "Nowhere"
    broken["States"]["Orphan"] = {"Type": "Succeed"}
    found = asl_checks.problems(broken)
    assert "ComputePoll goes to 'Nowhere', which does not exist" in found
    assert "Orphan is unreachable" in found
    assert asl_checks.problems({"StartAt": "X", "States": {}}) == ["StartAt names no state: 'X'"]


def test_every_step_is_a_start_a_wait_loop_and_a_poll_in_plan_order(machine: dict[str, Any]) -> None:
    assert machine["StartAt"] == title(STEP_ORDER[0])
    for step, after in zip(STEP_ORDER, [*STEP_ORDER[1:], None], strict=True):
        name = title(step)
        start, poll = machine["States"][name], machine["States"][f"{name}Poll"]
        assert start["Parameters"]["Payload"] == {
            "plan.$": "$.plan",
            "memo.$": "$.memo",
            "step": step,
            "phase": "start",
        }
        assert poll["Parameters"]["Payload"]["phase"] == "poll" and poll["Next"] == f"{name}Decide"
        (done,) = machine["States"][f"{name}Decide"]["Choices"]
        assert done == {"Variable": "$.memo.done", "BooleanEquals": True, "Next": title(after) if after else "Release"}
        assert machine["States"][f"{name}Wait"]["SecondsPath"] == "$.memo.wait"


def test_tasks_retry_lambdas_errors_and_never_rely_on_catching_runtime_errors(machine: dict[str, Any]) -> None:
    tasks = [s for s in machine["States"].values() if s["Type"] == "Task"]
    assert len(tasks) == 2 * len(STEP_ORDER) + 2  # and the two release states
    for task in tasks:
        assert (
            task["Resource"] == "arn:${Partition}:states:::lambda:invoke"
            and task["Parameters"]["FunctionName"] == "${RunnerArn}"
        )
        (retry,) = task["Retry"]
        assert "Lambda.TooManyRequestsException" in retry["ErrorEquals"] and retry["MaxAttempts"] >= 3
        (catch,) = task["Catch"]
        # States.ALL does not catch States.Runtime on AWS: name what a Lambda task raises.
        assert catch["ErrorEquals"] == ["States.TaskFailed", "States.Timeout"]
        # A step's failure ends through the lock's release; a failed release keeps the outcome.
        releasing = task["Parameters"]["Payload"]["step"] == "unlock"
        after = {"Release": "Done", "ReleaseAfterFailure": "Failed"}
        if releasing:
            name = next(n for n, s in machine["States"].items() if s is task)
            assert catch["Next"] == task["Next"] == after[name] and catch["ResultPath"] == "$.releaseError"
        else:
            assert catch["Next"] == "ReleaseAfterFailure" and catch["ResultPath"] == "$.error"
        # Only what the runner always returns is read: a missing path would be States.Runtime.
        assert set(task["ResultSelector"].values()) == {
            f"$.Payload.{k}" for k in ("outputs", "work", "results", "done", "wait")
        }
    assert machine["States"]["Failed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    assert machine["States"]["ReleaseAfterFailure"]["ResultPath"] == "$.released"  # $.error kept for Failed


def test_rollout_template_state_machine_and_bucket(templates: dict[str, Any]) -> None:
    rollout = templates["rollout"]
    machine = of_type(rollout, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    text, substitutions = machine["DefinitionString"]["Fn::Sub"]
    assert substitutions == {
        "Partition": {"Ref": "AWS::Partition"},
        "RunnerArn": {"Fn::GetAtt": ["RunnerFunction", "Arn"]},
    }
    assert json.loads(text)["StartAt"] == "Compute"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    runner = of_type(rollout, "AWS::Lambda::Function")["Properties"]
    assert runner["Handler"] == "rollout.runner.handler"
    assert runner["Code"] == {"S3Bucket": {"Ref": "RunnerCodeBucket"}, "S3Key": {"Ref": "RunnerCodeKey"}}
    bucket = of_type(rollout, "AWS::S3::Bucket")["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert bucket["LifecycleConfiguration"]["Rules"][0]["NoncurrentVersionExpiration"]
    (deny,) = of_type(rollout, "AWS::S3::BucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert machine["TracingConfiguration"] == {"Enabled": True}  # Control Tower CT.STEPFUNCTIONS.PR.2


def test_the_state_machine_may_only_invoke_the_runner_and_the_service_role_is_scoped(templates: dict[str, Any]) -> None:
    resources = templates["rollout"]["Resources"]
    statements = resources["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (invoke,) = [s for s in statements if s["Action"] == ["lambda:InvokeFunction"]]
    assert invoke["Resource"][0] == {"Fn::GetAtt": ["RunnerFunction", "Arn"]}
    others = [s for s in statements if s is not invoke]
    assert all(a.startswith(("logs:", "xray:")) for s in others for a in s["Action"])
    runner = json.dumps(resources["RunnerRole"]["Properties"]["Policies"][0]["PolicyDocument"])
    assert "cloudformation:ExecuteChangeSet" in runner and "${ComputeStackName}" in runner
    assert "iam:PassRole" in runner and "${CloudFormationRole.Arn}" in runner
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
    code = {"RunnerCodeBucket": "b", "RunnerCodeKey": "k"}
    resolved = Evaluator(templates["rollout"], code, pseudo={"AWS::Partition": partition},
                         attributes={"RunnerFunction.Arn": "arn:x"}).eval(machine["DefinitionString"])  # fmt: skip
    tasks = [state["Resource"] for state in json.loads(resolved)["States"].values() if state["Type"] == "Task"]
    assert tasks and all(task == f"arn:{partition}:states:::lambda:invoke" for task in tasks)
    assert "${" not in resolved


def test_cfn_lint_checks_the_definition_as_an_object(machine: dict[str, Any]) -> None:
    """The template carries a string (so the partition can vary) that cfn-lint cannot read; the
    same definition as an object, in the aws partition, passes its E3601 schema check."""
    text = substituted(machine, {"Partition": "aws", "RunnerArn": "arn:aws:lambda:eu-west-1:123456789012:function:r"})
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Machine": {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"RoleArn": "arn:aws:iam::123456789012:role/sfn", "Definition": json.loads(text)}}}}  # fmt: skip
    assert [str(m) for m in cfnlint.api.lint(json.dumps(template))] == []


def of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [r for r in template["Resources"].values() if r["Type"] == kind]
    return found


def asl_judges(machine: dict[str, Any]) -> dict[str, list[str]]:
    """What npm asl-validator and AWS's amazon-states-language-service find (gates/node/asl.mjs)."""
    text = substituted(machine, {"Partition": "aws", "RunnerArn": "arn:aws:lambda:eu-west-1:123456789012:function:r"})
    node = REPO / "gates" / "node"
    if not (node / "node_modules").is_dir():
        pytest.fail(f"{node}/node_modules is missing: run `npm ci --prefix {node}` (scripts/test does)")
    found = subprocess.run(["node", str(node / "asl.mjs")], input=text, capture_output=True, text=True, check=True)
    return dict(json.loads(found.stdout))


def test_two_validators_nobody_here_wrote_accept_the_definition_and_catch_a_broken_one(
    machine: dict[str, Any],
) -> None:
    assert asl_judges(machine) == {"asl-validator": [], "amazon-states-language-service": []}
    broken = copy.deepcopy(machine)
    broken["States"]["Compute"]["Next"] = "Nowhere"
    broken["States"]["ComputeWait"]["SecondsPath"] = "not a path"
    found = asl_judges(broken)
    assert any("SecondsPath" in problem for problem in found["asl-validator"])
    assert any("existing state" in problem for problem in found["amazon-states-language-service"])
