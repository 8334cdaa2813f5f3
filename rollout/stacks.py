"""One stack stage: inspect the stack, plan a change set, show it, execute it, watch it.

A stack whose template and parameters are unchanged (its fingerprint tag matches and its
template is the same text) is left alone without a single mutating call. Otherwise a change set
shows the planned changes before anything runs; a change set without changes is a no-op.
Watching polls status and events every `poll_seconds` (2 s by default; boto3's waiters wait 30 s)
and prints each resource event once. Failures name the failing resources and their reasons.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from generator.stages import NO_CHANGES, SUCCESS, UPDATABLE
from rollout.artifacts import StoredTemplate
from rollout.report import Reporter

FINGERPRINT_TAG = "careconnect:rollout-fingerprint"
CAPABILITIES = ["CAPABILITY_NAMED_IAM"]


class StageFailed(RuntimeError):
    """A stack stage ended in failure; `details` lists the failing resources and reasons."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class Declined(RuntimeError):
    """The release engineer answered no; nothing was executed."""


@dataclass(frozen=True)
class StackState:
    stack_id: str
    status: str
    reason: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    tags: dict[str, str]
    last_update: str = ""  # ISO 8601 UTC: the last update, else the creation


@dataclass
class StackResult:
    stage: str
    stack_name: str
    action: str  # created | updated | unchanged | planned
    changes: list[dict[str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def fingerprint(template_text: str, parameters: dict[str, str]) -> str:
    payload = json.dumps({"template": template_text, "parameters": parameters}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def describe(cloudformation: Any, stack_name: str) -> StackState | None:
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return StackState(
        stack_id=stack["StackId"],
        status=stack["StackStatus"],
        reason=stack.get("StackStatusReason", ""),
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
        tags={t["Key"]: t["Value"] for t in stack.get("Tags", [])},
        last_update=iso_time(stack.get("LastUpdatedTime") or stack.get("CreationTime")),
    )


def iso_time(moment: datetime | None) -> str:
    """A timestamp boto3 returned, as ISO 8601 to the second; '' for none."""
    return moment.isoformat(timespec="seconds") if moment else ""


def refusal(stack_name: str, state: StackState | None) -> str | None:
    """Why this stack cannot be deployed now (someone else's change, a stuck state), or None."""
    if state is None or state.status in (*UPDATABLE, "ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"):
        return None
    if state.status.endswith("_IN_PROGRESS"):
        return (
            f"stack {stack_name} is {state.status}: someone else is changing it. Wait until it "
            "finishes (or rolls back), then run the rollout again."
        )
    if state.status == "UPDATE_ROLLBACK_FAILED":
        return (
            f"stack {stack_name} is UPDATE_ROLLBACK_FAILED ({state.reason or 'no reason given'}). Fix the "
            "resources named in its events, then run `aws cloudformation continue-update-rollback "
            f"--stack-name {stack_name}` and, once it is UPDATE_ROLLBACK_COMPLETE, run the rollout again."
        )
    return (
        f"stack {stack_name} is {state.status} ({state.reason or 'no reason given'}); it cannot be "
        "updated. Inspect its events in the CloudFormation console."
    )


class StackDeployer:
    def __init__(
        self,
        cloudformation: Any,
        report: Reporter,
        *,
        confirm: Callable[[str], bool],
        dry_run: bool = False,
        poll_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        change_set_prefix: str = "rollout",
        approved_recreates: frozenset[str] = frozenset(),
    ) -> None:
        self.cf = cloudformation
        self.report = report
        self.confirm = confirm
        self.dry_run = dry_run
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.change_set_prefix = change_set_prefix
        self.approved_recreates = approved_recreates  # asked in preparation already

    def deploy(self, stage: str, stack_name: str, template: StoredTemplate, parameters: dict[str, str]) -> StackResult:
        state = describe(self.cf, stack_name)
        refused = refusal(stack_name, state)
        if refused:
            raise StageFailed(refused)
        if state is not None and state.status == "ROLLBACK_COMPLETE":
            why = f"{stack_name} is ROLLBACK_COMPLETE: its first create failed and it holds no resources"
            if self.dry_run:
                self.report.line(stage, f"{why}; a real run deletes it and creates it again")
                return StackResult(stage, stack_name, "planned")
            self._recreate(stage, stack_name, state, why)
            state = None
        mark = fingerprint(template.text, parameters)
        if state is not None and self._unchanged(stack_name, state, template.text, mark):
            self.report.line(stage, f"{stack_name}: unchanged")
            return StackResult(stage, stack_name, "unchanged", outputs=state.outputs)
        creating = state is None or state.status == "REVIEW_IN_PROGRESS"
        change_set = self._plan(stage, stack_name, template.url, parameters, mark, creating)
        if change_set is None:
            self.report.line(stage, f"{stack_name}: no changes")
            return StackResult(stage, stack_name, "unchanged", outputs=state.outputs if state else {})
        changes = change_set["changes"]
        self.report.changes(stage, stack_name, changes)
        if self.dry_run:
            self._discard(stack_name, change_set["id"], creating and state is None)
            return StackResult(stage, stack_name, "planned", changes)
        if not self.confirm(f"Execute {len(changes)} change(s) to {stack_name}?"):
            self._discard(stack_name, change_set["id"], creating and state is None)
            raise Declined(f"{stack_name}: change set not executed")
        last_event = self._latest_event_id(stack_name)
        self.cf.execute_change_set(ChangeSetName=change_set["id"], StackName=stack_name)
        final = self._watch(stage, stack_name, change_set["stack_id"], last_event)
        return StackResult(stage, stack_name, "created" if creating else "updated", changes, final.outputs)

    def follow(self, stage: str, stack_name: str) -> StackState:
        """Follow a change someone else started (or an interrupted run) to its end."""
        state = describe(self.cf, stack_name)
        if state is None:
            raise StageFailed(f"stack {stack_name} does not exist")
        return self._watch(stage, stack_name, state.stack_id, self._latest_event_id(stack_name))

    def _unchanged(self, stack_name: str, state: StackState, template_text: str, mark: str) -> bool:
        if state.status not in UPDATABLE or state.tags.get(FINGERPRINT_TAG) != mark:
            return False
        body = self.cf.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
        return body == template_text  # someone may have updated the stack by other means

    def _recreate(self, stage: str, stack_name: str, state: StackState, why: str) -> None:
        if stack_name not in self.approved_recreates and not self.confirm(f"{why}. Delete it and create it again?"):
            raise Declined(f"{stack_name}: left in ROLLBACK_COMPLETE")
        last_event = self._latest_event_id(stack_name)
        self.cf.delete_stack(StackName=stack_name)
        self._watch(stage, stack_name, state.stack_id, last_event, deleting=True)

    def _plan(
        self, stage: str, stack_name: str, template_url: str, parameters: dict[str, str], mark: str, creating: bool
    ) -> dict[str, Any] | None:
        name = f"{self.change_set_prefix}-{mark[:12]}-{int(time.time())}"
        created = self.cf.create_change_set(
            StackName=stack_name,
            ChangeSetName=name,
            ChangeSetType="CREATE" if creating else "UPDATE",
            TemplateURL=template_url,
            Capabilities=CAPABILITIES,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
            Tags=[{"Key": FINGERPRINT_TAG, "Value": mark}, {"Key": "Application", "Value": "CareConnect"}],
            Description=f"CareConnect rollout, stage {stage}",
        )
        change_set_id, stack_id = created["Id"], created["StackId"]
        while True:
            described = self.cf.describe_change_set(ChangeSetName=change_set_id, StackName=stack_name)
            status = described["Status"]
            if status in ("CREATE_COMPLETE", "FAILED"):
                break
            self.sleep(min(self.poll_seconds, 1.0))
        if status == "FAILED":
            reason = described.get("StatusReason", "")
            if any(text.lower() in reason.lower() for text in NO_CHANGES):
                self.cf.delete_change_set(ChangeSetName=change_set_id, StackName=stack_name)
                return None
            raise StageFailed(f"{stack_name}: the change set failed: {reason}")
        changes = self._changes(described, stack_name, change_set_id)
        return {"id": change_set_id, "stack_id": stack_id, "changes": changes}

    def _changes(self, described: dict[str, Any], stack_name: str, change_set_id: str) -> list[dict[str, str]]:
        pages = [described]
        while pages[-1].get("NextToken"):
            pages.append(
                self.cf.describe_change_set(
                    ChangeSetName=change_set_id, StackName=stack_name, NextToken=pages[-1]["NextToken"]
                )
            )
        return [
            {
                "action": c["ResourceChange"]["Action"],
                "resource": c["ResourceChange"]["LogicalResourceId"],
                "type": c["ResourceChange"]["ResourceType"],
                "replacement": c["ResourceChange"].get("Replacement", "") or "",
            }
            for page in pages
            for c in page.get("Changes", [])
        ]

    def _discard(self, stack_name: str, change_set_id: str, remove_empty_stack: bool) -> None:
        self.cf.delete_change_set(ChangeSetName=change_set_id, StackName=stack_name)
        if remove_empty_stack:  # a CREATE change set left an empty REVIEW_IN_PROGRESS stack
            self.cf.delete_stack(StackName=stack_name)

    def _latest_event_id(self, stack_name: str) -> str | None:
        events = self.cf.describe_stack_events(StackName=stack_name).get("StackEvents", [])
        return events[0]["EventId"] if events else None

    def _new_events(self, stack_id: str, last_seen: str | None) -> list[dict[str, Any]]:
        fresh: list[dict[str, Any]] = []
        for event in self.cf.describe_stack_events(StackName=stack_id).get("StackEvents", []):
            if event["EventId"] == last_seen:
                break
            fresh.append(event)
        return fresh[::-1]

    def _watch(
        self, stage: str, stack_name: str, stack_id: str, last_seen: str | None, *, deleting: bool = False
    ) -> StackState:
        failures: list[str] = []
        while True:
            for event in self._new_events(stack_id, last_seen):
                last_seen = event["EventId"]
                self.report.event(stage, event)
                if event["ResourceStatus"].endswith("FAILED") and event.get("ResourceStatusReason"):
                    failures.append(
                        f"{event['LogicalResourceId']} ({event['ResourceType']}): "
                        f"{event['ResourceStatus']}: {event['ResourceStatusReason']}"
                    )
            state = describe(self.cf, stack_id)
            if state is None or (deleting and state.status == "DELETE_COMPLETE"):
                return StackState(stack_id, "DELETE_COMPLETE", "", {}, {}, {})
            if not state.status.endswith("_IN_PROGRESS"):
                break
            self.sleep(self.poll_seconds)
        if state.status in SUCCESS and not deleting:
            return state
        raise StageFailed(
            f"{stack_name} ended {state.status}" + (f": {state.reason}" if state.reason else ""),
            failures or ["no resource reported a failure; see the stack's events"],
        )
