"""Stack states moto cannot produce, driven through botocore's Stubber: rolled-back creates and
updates, UPDATE_ROLLBACK_FAILED, someone else's update, the no-changes change set, interrupts."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from rollout.engine import execute
from rollout.plan import Plan
from rollout.report import Reporter
from rollout.stacks import Declined, StageFailed
from rollout.steps import DeployStack

NAME = "cc-websocket-api"
STACK_ID = f"arn:aws:cloudformation:eu-west-1:123456789012:stack/{NAME}/1"
CHANGE_SET_ID = "arn:aws:cloudformation:eu-west-1:123456789012:changeSet/rollout-x/1"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
URL = "https://b.s3.eu-west-1.amazonaws.com/templates/ws.yaml"


def stack(status: str, reason: str = "", tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": NAME,
                "StackId": STACK_ID,
                "CreationTime": NOW,
                "StackStatus": status,
                "StackStatusReason": reason,
                "Outputs": [{"OutputKey": "WebSocketApiId", "OutputValue": "a1"}],
                "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            }
        ]
    }


def event(
    n: int, logical: str, status: str, reason: str = "", kind: str = "AWS::ApiGatewayV2::Stage"
) -> dict[str, Any]:
    return {
        "StackId": STACK_ID,
        "EventId": f"e{n}",
        "StackName": NAME,
        "Timestamp": NOW,
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
    }


def events(*items: dict[str, Any]) -> dict[str, Any]:
    return {"StackEvents": list(reversed(items))}  # newest first, as CloudFormation answers


class Harness:
    def __init__(self, confirm: bool = True) -> None:
        self.cf = boto3.client(
            "cloudformation",
            region_name="eu-west-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        self.stub = Stubber(self.cf)
        self.out = io.StringIO()
        self.sleeps: list[float] = []
        self.questions: list[str] = []

        def answer(question: str) -> bool:
            self.questions.append(question)
            return confirm

        self.confirm, self.report, self.sleep = answer, Reporter(self.out), self.sleeps.append
        self.calls: list[str] = []
        self.recreate = confirm  # asked before the plan was made (rollout.prepare)

    def client(self, service: str) -> Any:
        return self.cf

    def expect(self, operation: str, response: dict[str, Any], params: dict[str, Any] | None = None) -> None:
        self.stub.add_response(operation, response, params)

    def missing(self) -> None:
        self.stub.add_client_error("describe_stacks", "ValidationError", f"Stack with id {NAME} does not exist")

    def planned(self, change_set_type: str) -> None:
        if change_set_type == "UPDATE":  # the live template read first: another template, so a change set
            self.expect(
                "get_template", {"TemplateBody": "Resources: {}"}, {"StackName": NAME, "TemplateStage": "Original"}
            )
        self.expect(
            "create_change_set",
            {"Id": CHANGE_SET_ID, "StackId": STACK_ID},
            {
                "StackName": NAME,
                "ChangeSetName": ANY,
                "ChangeSetType": change_set_type,
                "TemplateURL": URL,
                "Capabilities": ["CAPABILITY_NAMED_IAM"],
                "Parameters": ANY,
                "Tags": ANY,
                "Description": ANY,
                # Always named, an empty list too: CloudFormation would reuse the stack's last triggers.
                "RollbackConfiguration": {"RollbackTriggers": [], "MonitoringTimeInMinutes": 0},
            },
        )
        self.expect(
            "describe_change_set",
            {
                "Status": "CREATE_COMPLETE",
                "StackId": STACK_ID,
                "Changes": [
                    {
                        "Type": "Resource",
                        "ResourceChange": {
                            "Action": "Modify",
                            "LogicalResourceId": "Stage",
                            "ResourceType": "AWS::ApiGatewayV2::Stage",
                            "Replacement": "False",
                        },
                    }
                ],
            },
        )

    def deploy(self) -> Any:
        """The websocket stack's deploy step, run by the local executor on the stubbed client."""
        step = DeployStack(
            "websocket", 2.0, NAME, URL, "0" * 64, {"StageName": "prod"}, "", "rollout-1-a", self.recreate
        )
        plan = Plan("test", "eu-west-1", "123456789012", "aws", "b", "", "1-a", (step,))
        outputs: dict[str, dict[str, str]] = {}
        with self.stub:
            (result,) = execute(plan, self, outputs, self.sleep)
            self.stub.assert_no_pending_responses()
            return result | {"outputs": outputs.get("websocket", {})}


def test_a_create_that_rolls_back_names_the_failing_resource() -> None:
    h = Harness()
    h.missing()
    h.planned("CREATE")
    h.expect(
        "describe_stack_events",
        events(event(1, NAME, "REVIEW_IN_PROGRESS", kind="AWS::CloudFormation::Stack")),
    )
    h.expect("execute_change_set", {})
    h.expect(
        "describe_stack_events",
        events(event(1, NAME, "REVIEW_IN_PROGRESS"), event(2, "Stage", "CREATE_IN_PROGRESS")),
    )
    h.expect("describe_stacks", stack("CREATE_IN_PROGRESS"))
    h.expect(
        "describe_stack_events",
        events(
            event(1, NAME, "REVIEW_IN_PROGRESS"),
            event(2, "Stage", "CREATE_IN_PROGRESS"),
            event(
                3,
                "Stage",
                "CREATE_FAILED",
                "CloudWatch Logs role ARN must be set in account settings to enable logging",
            ),
            event(4, NAME, "ROLLBACK_COMPLETE", kind="AWS::CloudFormation::Stack"),
        ),
    )
    h.expect(
        "describe_stacks",
        stack("ROLLBACK_COMPLETE", "The following resource(s) failed to create: [Stage]."),
    )
    with pytest.raises(StageFailed) as raised:
        h.deploy()
    assert "ended ROLLBACK_COMPLETE: The following resource(s) failed to create: [Stage]" in str(raised.value)
    assert raised.value.details == [
        "Stage (AWS::ApiGatewayV2::Stage): CREATE_FAILED: CloudWatch Logs role ARN "
        "must be set in account settings to enable logging"
    ]
    assert h.sleeps == [2.0]  # the change set and the stack looked at at once, then every 2 s (boto3: 30 s)
    assert h.out.getvalue().count("CREATE_IN_PROGRESS") == 1  # each event printed once


def test_an_update_that_rolls_back_is_a_failure_with_its_cause() -> None:
    h = Harness()
    h.expect("describe_stacks", stack("UPDATE_COMPLETE"))
    h.planned("UPDATE")
    h.expect("describe_stack_events", events(event(1, NAME, "UPDATE_COMPLETE")))
    h.expect("execute_change_set", {})
    h.expect(
        "describe_stack_events",
        events(
            event(1, NAME, "UPDATE_COMPLETE"),
            event(2, "Stage", "UPDATE_FAILED", "Throttling rate must be positive"),
            event(3, NAME, "UPDATE_ROLLBACK_COMPLETE", kind="AWS::CloudFormation::Stack"),
        ),
    )
    h.expect("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"))
    with pytest.raises(StageFailed) as raised:
        h.deploy()
    assert "ended UPDATE_ROLLBACK_COMPLETE" in str(raised.value)
    assert raised.value.details == ["Stage (AWS::ApiGatewayV2::Stage): UPDATE_FAILED: Throttling rate must be positive"]


def test_update_rollback_failed_is_explained_and_nothing_is_tried() -> None:
    h = Harness()
    h.expect("describe_stacks", stack("UPDATE_ROLLBACK_FAILED", "Resource Stage failed to roll back"))
    with pytest.raises(StageFailed) as raised:
        h.deploy()
    assert f"continue-update-rollback --stack-name {NAME}" in str(raised.value)
    assert "Resource Stage failed to roll back" in str(raised.value)


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"])
def test_someone_elses_change_in_progress_is_refused(status: str) -> None:
    h = Harness()
    h.expect("describe_stacks", stack(status))
    with pytest.raises(StageFailed, match=f"is {status}: someone else is changing it"):
        h.deploy()


def test_a_first_create_that_rolled_back_is_deleted_and_created_again_after_confirmation() -> None:
    h = Harness()
    h.expect("describe_stacks", stack("ROLLBACK_COMPLETE"))
    h.expect("describe_stack_events", events(event(1, NAME, "ROLLBACK_COMPLETE")))
    h.expect("delete_stack", {}, {"StackName": NAME})
    h.expect(
        "describe_stack_events",
        events(event(1, NAME, "ROLLBACK_COMPLETE"), event(2, NAME, "DELETE_COMPLETE")),
    )
    h.expect("describe_stacks", stack("DELETE_COMPLETE"))
    h.planned("CREATE")
    h.expect("describe_stack_events", events())
    h.expect("execute_change_set", {})
    h.expect("describe_stack_events", events(event(3, "Stage", "CREATE_COMPLETE")))
    h.expect("describe_stacks", stack("CREATE_COMPLETE"))
    result = h.deploy()
    assert result["action"] == "created" and result["outputs"] == {"WebSocketApiId": "a1"}
    assert h.questions == [f"Execute 1 change(s) to {NAME}?"]  # the re-create itself was asked in preparation


def test_a_recreate_not_agreed_to_changes_nothing() -> None:
    h = Harness(confirm=False)
    h.expect("describe_stacks", stack("ROLLBACK_COMPLETE"))
    with pytest.raises(Declined):
        h.deploy()


def test_a_change_set_without_changes_is_a_no_op() -> None:
    h = Harness()
    h.expect("describe_stacks", stack("UPDATE_COMPLETE"))
    h.expect("get_template", {"TemplateBody": "Resources: {}"})
    h.expect("create_change_set", {"Id": CHANGE_SET_ID, "StackId": STACK_ID})
    h.expect(
        "describe_change_set",
        {
            "Status": "FAILED",
            "StackId": STACK_ID,
            "StatusReason": "[ValidationError] The submitted information didn't contain changes. Submit different information.",
        },
    )
    h.expect("delete_change_set", {}, {"ChangeSetName": CHANGE_SET_ID, "StackName": NAME})
    assert h.deploy()["action"] == "unchanged"


def test_a_failed_change_set_says_why() -> None:
    h = Harness()
    h.expect("describe_stacks", stack("UPDATE_COMPLETE"))
    h.expect("get_template", {"TemplateBody": "Resources: {}"})
    h.expect("create_change_set", {"Id": CHANGE_SET_ID, "StackId": STACK_ID})
    h.expect(
        "describe_change_set",
        {"Status": "FAILED", "StackId": STACK_ID, "StatusReason": "Parameter validation failed: StageName"},
    )
    h.expect("delete_change_set", {}, {"ChangeSetName": CHANGE_SET_ID, "StackName": NAME})  # not left behind
    with pytest.raises(StageFailed, match="the change set failed: Parameter validation failed: StageName"):
        h.deploy()


def test_interrupt_while_watching_stops_at_once() -> None:
    h = Harness()
    h.expect("describe_stacks", stack("UPDATE_COMPLETE"))
    h.planned("UPDATE")
    h.expect("describe_stack_events", events())
    h.expect("execute_change_set", {})
    h.expect("describe_stack_events", events(event(1, "Stage", "UPDATE_IN_PROGRESS")))
    h.expect("describe_stacks", stack("UPDATE_IN_PROGRESS"))

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    h.sleep = interrupted
    with pytest.raises(KeyboardInterrupt):
        h.deploy()


def test_a_stack_failure_with_no_reason_still_fails_clearly() -> None:
    """AWS may leave StackStatusReason out: the step says what it knows, never crashes on it."""
    h = Harness()
    h.expect("describe_stacks", stack("UPDATE_COMPLETE"))
    h.planned("UPDATE")
    h.expect("describe_stack_events", events())
    h.expect("execute_change_set", {})
    h.expect("describe_stack_events", events())
    failed = stack("UPDATE_ROLLBACK_COMPLETE")
    del failed["Stacks"][0]["StackStatusReason"]
    h.expect("describe_stacks", failed)
    with pytest.raises(StageFailed) as raised:
        h.deploy()
    assert str(raised.value) == f"{NAME} ended UPDATE_ROLLBACK_COMPLETE"
    assert raised.value.details == ["no resource reported a failure; see the stack's events"]
