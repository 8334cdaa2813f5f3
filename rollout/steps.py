"""The rollout's steps: one code for both orchestrators.

A step is plain data (what to do, with every input decided by `rollout.plan.resolve`) plus `start`
and `poll`: `start` makes the first calls and returns a `Progress`; while it is not done, the
orchestrator waits `wait` seconds and calls `poll` with the progress's `work`. The local executor
(`rollout.engine`) sleeps between calls in-process; the state machine waits in Wait states and each
call is one invocation of the runner function (`rollout.runner`), so no invocation lasts long and
nothing is billed while CloudFormation works. Steps read and write the run's memo (`outputs` of
the stacks, by stage), which is all the state data holds: never a function's environment.

Each step also declares the AWS calls it may make (`calls`): the runner's role is generated from
them and the tests check the calls a rehearsal makes against them.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from botocore.exceptions import ClientError

from generator.model import ALIAS
from generator.stages import (
    ARTIFACT_PARAMETERS,
    NO_CHANGES,
    SHIFT_PARAMETERS,
    SUCCESS,
    UPDATABLE,
    VERSION_ALARM_SUFFIX,
    VERSION_PARAMETERS,
)
from rollout import bake as baking
from rollout import endpoints, live, protection
from rollout.report import Reporter
from rollout.stacks import (
    CAPABILITIES,
    FINGERPRINT_TAG,
    Declined,
    StackState,
    StageFailed,
    describe,
    fingerprint,
    refusal,
)

MAX_WAIT_SECONDS = 3600  # a step that waits longer has failed (CloudFormation goes on; the next run says so)
# Each poll is about 9 events of an execution's history (Task, Choice, Wait), which holds at most
# 25,000: the count bounds a step whose wait is short or 0 (rehearsals) where time alone would not.
MAX_POLLS = 2500
# A service role created moments ago (the rollout stack's, before its first change set) may not be
# assumable yet: IAM documents changes taking "a few seconds" to be seen everywhere, CDK and rain
# users report minutes. CloudFormation refuses the change set meanwhile; the step asks again every
# ROLE_RETRY_SECONDS until ROLE_PROPAGATION_SECONDS have passed, then fails naming the role.
ROLE_PROPAGATION_SECONDS = 300
ROLE_RETRY_SECONDS = 10
NOT_ASSUMABLE = "is invalid or cannot be assumed"
# API Gateway refuses to log through a role IAM has not propagated ("The role ARN does not have
# required permissions set to API Gateway"), and CloudFormation's AWS::ApiGateway::Account does not
# wait for it: the account's logging role is at least this old before the websocket stack sets it.
ACCOUNT_ROLE_SETTLE_SECONDS = 30


@dataclass(frozen=True)
class Call:
    """An AWS call a step may make: IAM action and resource ARN (patterns with `*`)."""

    action: str
    resource: str


@dataclass(frozen=True)
class Where:
    """Where the calls go: what an ARN needs."""

    partition: str
    region: str
    account: str

    def arn(self, service: str, rest: str, *, regional: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if regional else ''}:{self.account}:{rest}"


class Context(Protocol):
    """What a step runs with: clients, where to report, and how to ask (the local executor asks the
    release engineer; inside AWS the execution was approved before it started)."""

    report: Reporter

    @property
    def calls(self) -> list[str]:
        """Every AWS call made through `client`, "service:Operation target", in order."""

    def client(self, service: str) -> Any: ...

    def confirm(self, question: str) -> bool: ...


@dataclass
class Progress:
    done: bool
    work: dict[str, Any] = field(default_factory=dict)
    wait: float = 0.0
    result: dict[str, Any] | None = None  # a StageResult as a dict, when done


Ref = dict[str, str]  # {"from": stage, "output": key}: an output of an earlier step


def ref(stage: str, output: str) -> Ref:
    return {"from": stage, "output": output}


def value_of(value: str | Ref, outputs: dict[str, dict[str, str]]) -> str | None:
    """A literal, or the output an earlier step produced (None when it has not)."""
    if isinstance(value, str):
        return value
    return outputs.get(value["from"], {}).get(value["output"])


@dataclass(frozen=True)
class Step:
    name: str  # the stage it reports as, and its state in the state machine
    wait: float  # seconds between polls

    kind: ClassVar[str]

    def description(self) -> str:
        raise NotImplementedError

    def calls(self, where: Where) -> list[Call]:
        raise NotImplementedError

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        raise NotImplementedError

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    def max_wait_seconds(self) -> float:
        """How long the step may wait: MAX_WAIT_SECONDS, unless the step says otherwise."""
        return MAX_WAIT_SECONDS

    def bounded(self, work: dict[str, Any], now: Callable[[], float] = time.time) -> dict[str, Any]:
        """The work with one more poll counted; a step waiting over max_wait_seconds() (wall time,
        the same on a laptop and in the runner) or MAX_POLLS checks has waited too long."""
        polls, since = int(work.get("polls", 0)) + 1, float(work.get("since", now()))
        waited = now() - since
        if waited > self.max_wait_seconds() or polls > MAX_POLLS:
            raise StageFailed(
                f"{self.name}: still waiting after {waited / 60:.0f} min ({polls - 1} checks {self.wait:g} s apart); "
                "CloudFormation carries on: run `rollout watch` or `rollout status` to see how it ends"
            )
        return {**work, "polls": polls, "since": since}


def _result(stage: str, action: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    return {"stage": stage, "action": action, "detail": detail, **extra}


@dataclass(frozen=True)
class DeployStack(Step):
    """Bring one stack to its template and parameters through a change set, shown before it runs."""

    stack_name: str
    template_url: str
    template_sha256: str
    parameters: dict[str, Any]  # name -> literal or Ref
    role_arn: str = ""  # the CloudFormation service role every change set names ("" : none)
    change_set_name: str = "rollout"  # unique per run (rollout-<run id>)
    recreate: bool = False  # a ROLLBACK_COMPLETE stack may be deleted and created again (asked before)
    code_sha256: str = ""  # the CodeSha256 every function of the stack runs ("" : not checked)
    code_from: tuple[str, ...] = ()  # the parameters naming that code's bucket and key
    functions_pattern: str = ""  # the stack's function names, as a pattern (declared calls)
    no_echo: tuple[str, ...] = ()  # parameters whose values are never printed
    protect: bool = False  # termination protection on, once the stack exists (rollout/protection.py)
    stack_policy: str = ""  # the stack policy it holds ("" : none)
    allow_replacement: bool = False  # a change set that replaces resources may run (--allow-replacement)
    digest_parameter: str = ""  # filled with configuration_digest() of the others ("" : none)
    rollback_alarms: tuple[str, ...] = ()  # the change set's RollbackConfiguration triggers, by alarm name
    monitoring_minutes: int = 0  # how long CloudFormation watches them after the update
    kind: ClassVar[str] = "stack"

    def description(self) -> str:
        role = f" as {self.role_arn.rsplit('/', 1)[-1]}" if self.role_arn else ""
        return f"deploy stack {self.stack_name}{role} from {self.template_url.rsplit('/', 1)[-1]}"

    def calls(self, where: Where) -> list[Call]:
        # The change-set calls authorize on the stack (Service Authorization Reference), and creating
        # or executing a change set with tags authorizes TagResource/UntagResource on it too.
        stack = where.arn("cloudformation", f"stack/{self.stack_name}/*")
        actions = (
            "DescribeStacks",
            "DescribeStackEvents",
            "GetTemplate",
            "CreateChangeSet",
            "DeleteStack",
            "DescribeChangeSet",
            "ExecuteChangeSet",
            "DeleteChangeSet",
            "TagResource",
            "UntagResource",
        )
        calls = [Call(f"cloudformation:{a}", stack) for a in (*actions, "ListStackResources")]
        if self.protect or self.stack_policy:
            calls += [Call(f"cloudformation:{a}", stack) for a in protection.CALLS]
        if self.code_sha256 or self.functions_pattern:  # the code each function runs, read and restored
            function = where.arn("lambda", f"function:{self.functions_pattern or '*'}")
            calls += [Call(f"lambda:{a}", function) for a in ("GetFunctionConfiguration", "UpdateFunctionCode")]
        if self.role_arn:
            calls.append(Call("iam:PassRole", self.role_arn))
        if self.rollback_alarms:  # the triggers' ARNs, read before each change set
            calls.append(Call("cloudwatch:DescribeAlarms", where.arn("cloudwatch", "alarm:*")))
        bucket, key = self.template_url.split("//", 1)[1].split(".s3.", 1)[0], self.template_url.split("/", 3)[3]
        calls.append(Call("s3:GetObject", f"arn:{where.partition}:s3:::{bucket}/{key}"))  # TemplateURL, as the caller
        if self.functions_pattern:  # UpdateFunctionCode reads the zip as the caller
            calls.append(Call("s3:GetObject", f"arn:{where.partition}:s3:::{bucket}/handlers/*"))
        return calls

    def max_wait_seconds(self) -> float:
        """MAX_WAIT_SECONDS and the monitoring time: CloudFormation keeps the stack in progress
        while it watches the triggers after the update."""
        return MAX_WAIT_SECONDS + self.monitoring_minutes * 60

    def watch_seconds(self) -> float:
        """The wait between looks at the executing stack: `wait`, or longer if the monitoring time
        would otherwise take more than MAX_POLLS looks before max_wait_seconds() has passed."""
        return max(self.wait, self.max_wait_seconds() / MAX_POLLS) if self.monitoring_minutes else self.wait

    def resolved(self, outputs: dict[str, dict[str, str]]) -> dict[str, str]:
        """The parameters with every reference to an earlier step's output filled in."""
        values = {name: value_of(value, outputs) for name, value in self.parameters.items()}
        filled = {name: value for name, value in values.items() if value is not None}
        if self.digest_parameter:
            filled[self.digest_parameter] = configuration_digest(filled)
        return filled

    def _deployable(self, cf: Any) -> StackState | None:
        """The stack as it is now (None: absent), refused if someone else is changing it or it is stuck."""
        state = describe(cf, self.stack_name)
        refused = refusal(self.stack_name, state)
        if refused:
            raise StageFailed(refused)
        return state

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        cf = ctx.client("cloudformation")
        state = self._deployable(cf)
        if state is not None and state.status == "ROLLBACK_COMPLETE":
            if not self.recreate:
                raise Declined(f"{self.stack_name}: left in ROLLBACK_COMPLETE")
            last = latest_event_id(cf, self.stack_name)
            cf.delete_stack(StackName=self.stack_name, **self._role())
            return Progress(False, {"phase": "deleting", "stack_id": state.stack_id, "last_event": last}, self.wait)
        parameters = self.resolved(outputs)
        mark = fingerprint(self.template_sha256, parameters)
        if state is not None and self._unchanged(ctx, state, parameters):
            outputs[self.name] = state.outputs
            self._hold(ctx, state)
            return self._code(ctx, {"creating": False, "changes": []}, "unchanged")
        planned = self._plan(ctx, state is None or state.status == "REVIEW_IN_PROGRESS", parameters, mark)
        return Progress(False, {**planned.work, "outputs": state.outputs if state else {}}, planned.wait)

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        cf, work = ctx.client("cloudformation"), self.bounded(work)
        if work["phase"] == "deleting":
            state = self._watch(ctx, work)
            if state is not None and state.status == "DELETE_FAILED":
                reason = state.reason or "no reason given"
                raise StageFailed(
                    f"{self.stack_name}: deleting it to create it again failed: {reason}",
                    work.get("failures") or ["see the stack's events"],
                )
            if state is None:
                parameters = self.resolved(outputs)
                return self._plan(ctx, True, parameters, fingerprint(self.template_sha256, parameters))
            return Progress(False, work, self.wait)
        if work["phase"] == "role":  # the service role was not assumable yet: ask again
            parameters = self.resolved(outputs)
            mark = fingerprint(self.template_sha256, parameters)
            planned = self._plan(ctx, work["creating"], parameters, mark, int(work["attempts"]))
            return Progress(False, {**planned.work, "outputs": work.get("outputs", {})}, planned.wait)
        if work["phase"] == "planning":
            changes = self._change_set(ctx, work)
            if changes is None:
                return Progress(False, work, min(self.wait, 1.0))
            if changes == "none":
                outputs[self.name] = work.get("outputs", {})
                return self._code(ctx, {"creating": False, "changes": []}, "unchanged")
            replaced = protection.replacing(changes) if isinstance(changes, list) else []
            if replaced and not self.allow_replacement:
                discard(cf, self.stack_name, work["change_set"], work["creating"])
                protection.refuse(self.stack_name, replaced)
            if not ctx.confirm(f"Execute {len(changes)} change(s) to {self.stack_name}?"):
                discard(cf, self.stack_name, work["change_set"], work["creating"])
                raise Declined(f"{self.stack_name}: change set not executed")
            if self.stack_policy and replaced:
                protection.lift(cf, self.stack_name)  # for this update only: restored once it ended
                ctx.report.line(
                    self.name, f"{self.stack_name}: stack policy lifted for this update (--allow-replacement)"
                )
            last = latest_event_id(cf, self.stack_name)
            cf.execute_change_set(ChangeSetName=work["change_set"], StackName=self.stack_name)
            work = {**work, "phase": "executing", "last_event": last, "changes": changes}
            return Progress(False, work, 0)  # look at once: the first events are already there
        if work["phase"] == "code":
            pending = [f for f in work["pending"] if not endpoints.settled(ctx.client("lambda"), f)]
            if pending:
                return Progress(False, {**work, "pending": pending}, self.wait)
            detail = (
                f"{self.stack_name}: {len(work['changes'])} change(s); code restored on {', '.join(work['restored'])}"
            )
            return Progress(
                True, result=_result(self.name, work["action"], detail, stack=self.stack_name, changes=work["changes"])
            )
        state = self._watch(ctx, work)
        if state is None or state.status.endswith("_IN_PROGRESS"):
            return Progress(False, work, self.watch_seconds())
        self._hold(ctx, state)
        if state.status not in SUCCESS:
            raise StageFailed(
                f"{self.stack_name} ended {state.status}" + (f": {state.reason}" if state.reason else ""),
                work.get("failures") or ["no resource reported a failure; see the stack's events"],
            )
        outputs[self.name] = state.outputs
        return self._code(ctx, work, "created" if work["creating"] else "updated")

    def _code(self, ctx: Context, work: dict[str, Any], action: str) -> Progress:
        """Done, once every function runs the plan's code: a function whose code was replaced by
        other means (CloudFormation never sees it) is given the plan's code back from S3."""
        stale = self._stale_code(ctx)
        if not stale:
            if action == "unchanged":
                ctx.report.line(self.name, f"{self.stack_name}: unchanged (template, parameters and code as planned)")
                return Progress(True, result=_result(self.name, action, self.stack_name, stack=self.stack_name))
            detail = f"{self.stack_name}: {len(work['changes'])} change(s)"
            return Progress(
                True, result=_result(self.name, action, detail, stack=self.stack_name, changes=work["changes"])
            )
        bucket, key = (self.parameters[p] for p in self.code_from)
        lambda_client = ctx.client("lambda")
        for function in stale:
            ctx.report.line(self.name, f"{function}: runs other code than s3://{bucket}/{key}: restoring it")
            lambda_client.update_function_code(FunctionName=function, S3Bucket=bucket, S3Key=key)
        work = {
            **work,
            "phase": "code",
            "pending": stale,
            "restored": stale,
            "action": "updated" if action == "unchanged" else action,
        }
        return Progress(False, work, self.wait)

    def _hold(self, ctx: Context, state: StackState) -> None:
        """Termination protection on and the planned stack policy back (after a lifted update too)."""
        if (self.protect or self.stack_policy) and state.status in UPDATABLE:
            cf = ctx.client("cloudformation")
            for line in protection.hold(cf, self.stack_name, state.protected or not self.protect, self.stack_policy):
                ctx.report.line(self.name, line)

    def _stale_code(self, ctx: Context) -> list[str]:
        if not self.code_sha256:
            return []
        functions = live.functions_of(ctx.client("cloudformation"), self.stack_name)
        return live.other_code(ctx.client("lambda"), functions, self.code_sha256)

    def preview(
        self, ctx: Context, outputs: dict[str, dict[str, str]], sleep: Callable[[float], None]
    ) -> dict[str, Any]:
        """What a run would change, shown and then discarded: the dry run. Changes nothing else."""
        cf = ctx.client("cloudformation")
        state = self._deployable(cf)
        if state is not None and state.status == "ROLLBACK_COMPLETE":
            ctx.report.line(
                self.name, f"{self.stack_name} is ROLLBACK_COMPLETE: a real run deletes it and creates it again"
            )
            return _result(self.name, "planned", self.stack_name, stack=self.stack_name)
        missing = sorted(
            f"{v['from']}.{v['output']}"
            for v in self.parameters.values()
            if not isinstance(v, str) and value_of(v, outputs) is None
        )
        if missing:
            ctx.report.line(self.name, f"{self.stack_name}: planned once {', '.join(missing)} exist")
            return _result(self.name, "planned", f"after {', '.join(missing)}", stack=self.stack_name)
        parameters = self.resolved(outputs)
        mark = fingerprint(self.template_sha256, parameters)
        for name, value in sorted(parameters.items()):
            ctx.report.line(self.name, f"  parameter {name} = {'****' if name in self.no_echo else value}")
        if state is not None and self._unchanged(ctx, state, parameters):
            stale = self._stale_code(ctx)
            for function in stale:
                ctx.report.line(self.name, f"{function}: runs other code: a real run restores the plan's")
            ctx.report.line(self.name, f"{self.stack_name}: unchanged")
            return _result(self.name, "planned" if stale else "unchanged", self.stack_name, stack=self.stack_name)
        creating = state is None or state.status == "REVIEW_IN_PROGRESS"
        planned = self._plan(ctx, creating, parameters, mark)
        while planned.work["phase"] == "role":
            sleep(planned.wait)
            planned = self._plan(ctx, creating, parameters, mark, int(planned.work["attempts"]))
        work = planned.work
        while (changes := self._change_set(ctx, work)) is None:
            sleep(min(self.wait, 1.0))
        if changes == "none":
            return _result(self.name, "unchanged", self.stack_name, stack=self.stack_name)
        for line in protection.describe_replacements(self.stack_name, changes if isinstance(changes, list) else []):
            refused = "" if self.allow_replacement else " (a real run refuses it without --allow-replacement)"
            ctx.report.line(self.name, f"WARNING {line}{refused}")
        emptied = work["creating"] and state is None
        discard(cf, self.stack_name, work["change_set"], emptied)
        for _ in range(MAX_POLLS if emptied else 0):  # gone before a real run may create it
            if (left := describe(cf, self.stack_name)) is None or left.status == "DELETE_COMPLETE":
                break
            sleep(max(self.wait, 1.0))
        return _result(
            self.name, "planned", f"{self.stack_name}: {len(changes)} change(s)", stack=self.stack_name, changes=changes
        )

    def _change_set(self, ctx: Context, work: dict[str, Any]) -> list[dict[str, str]] | str | None:
        """The planned change set's changes (reported), "none" for a change set without changes
        (deleted), or None while CloudFormation is still planning it."""
        cf = ctx.client("cloudformation")
        described = cf.describe_change_set(ChangeSetName=work["change_set"], StackName=self.stack_name)
        status = described["Status"]
        if status not in ("CREATE_COMPLETE", "FAILED"):
            return None
        if status == "FAILED":
            reason = described.get("StatusReason", "")
            cf.delete_change_set(ChangeSetName=work["change_set"], StackName=self.stack_name)
            if any(text.lower() in reason.lower() for text in NO_CHANGES) and not work["creating"]:
                ctx.report.line(self.name, f"{self.stack_name}: no changes")
                return "none"
            raise StageFailed(f"{self.stack_name}: the change set failed: {reason or 'no reason given'}")
        changes = change_list(cf, described, self.stack_name, work["change_set"])
        ctx.report.changes(self.name, self.stack_name, changes)
        return changes

    def _role(self) -> dict[str, str]:
        return {"RoleARN": self.role_arn} if self.role_arn else {}

    def _unchanged(self, ctx: Context, state: Any, parameters: dict[str, str]) -> bool:
        """The live stack holds the plan's template and parameters, as read back (never the tag)."""
        if state.status not in UPDATABLE:
            return False
        text = live.template_text(ctx.client("cloudformation"), self.stack_name)
        if template_sha256(text) != self.template_sha256:
            ctx.report.line(self.name, f"{self.stack_name}: its live template is not the plan's")
            return False
        differs = live.differences(state.parameters, parameters)
        for line in differs:
            ctx.report.line(self.name, f"{self.stack_name}: {line}")
        if not differs and state.status == "UPDATE_ROLLBACK_COMPLETE":
            ctx.report.line(self.name, f"{self.stack_name}: its last update rolled back to exactly this plan")
        return not differs

    def _plan(self, ctx: Context, creating: bool, parameters: dict[str, str], mark: str, attempts: int = 0) -> Progress:
        cf, name = ctx.client("cloudformation"), f"{self.change_set_name}-{self.name}"
        try:
            created = self._create_change_set(cf, name, creating, parameters, mark, self._rollback_triggers(ctx))
        except ClientError as error:
            if self.role_arn and NOT_ASSUMABLE in error.response["Error"].get("Message", ""):
                return self._role_not_assumable(ctx, creating, attempts, error.response["Error"]["Message"])
            if error.response["Error"]["Code"] != "AlreadyExistsException":
                raise
            # This run made it already (a phase retried after Lambda failed to answer): go on with it.
            found = cf.describe_change_set(ChangeSetName=name, StackName=self.stack_name)
            created = {"Id": found["ChangeSetId"], "StackId": found["StackId"]}
        work = {"phase": "planning", "change_set": created["Id"], "stack_id": created["StackId"], "creating": creating}
        return Progress(False, work, 0)  # a look at once: small change sets are often ready

    def _role_not_assumable(self, ctx: Context, creating: bool, attempts: int, message: str) -> Progress:
        waited = attempts * ROLE_RETRY_SECONDS
        if waited >= ROLE_PROPAGATION_SECONDS:
            raise StageFailed(
                f"{self.stack_name}: CloudFormation still cannot assume the service role {self.role_arn} "
                f"after {waited} s: {message}",
                [
                    "IAM makes a new role usable within seconds to minutes; one refused for longer does not exist "
                    "or does not trust cloudformation.amazonaws.com: check the rollout stack's CloudFormationRole",
                ],
            )
        ctx.report.line(
            self.name,
            f"{self.stack_name}: CloudFormation cannot assume {self.role_arn.rsplit('/', 1)[-1]} yet (IAM is "
            f"propagating a new role): asking again in {ROLE_RETRY_SECONDS} s ({waited} of {ROLE_PROPAGATION_SECONDS} s)",
        )
        return Progress(False, {"phase": "role", "creating": creating, "attempts": attempts + 1}, ROLE_RETRY_SECONDS)

    def _rollback_triggers(self, ctx: Context) -> dict[str, Any]:
        """RollbackConfiguration, always given (CloudFormation reuses a stack's last triggers when a
        change set names none): the environment's alarms that exist (none before the first
        create; none on a shift's move back), less any already in ALARM. Leaving those out is our
        choice, whatever CloudFormation would do with them at the start (it documents only an
        alarm *going* to ALARM): as a trigger it could only roll back the update that may be the
        fix (the SAM #716 complaint, about CodeDeploy's alarms); each one left out is named."""
        arns = []
        found = (
            ctx.client("cloudwatch").describe_alarms(AlarmNames=list(self.rollback_alarms), AlarmTypes=["MetricAlarm"])
            if self.rollback_alarms
            else {}
        )
        for alarm in sorted(found.get("MetricAlarms", []), key=lambda a: a["AlarmArn"]):
            if alarm["StateValue"] == "ALARM":
                ctx.report.line(
                    self.name,
                    f"WARNING {alarm['AlarmName']} is in ALARM already: not a rollback trigger of this "
                    "update (it could only roll back a fix); the alarms after the update still count",
                )
            else:
                arns.append(alarm["AlarmArn"])
        triggers = [{"Arn": arn, "Type": "AWS::CloudWatch::Alarm"} for arn in arns]
        return {
            "RollbackConfiguration": {"RollbackTriggers": triggers, "MonitoringTimeInMinutes": self.monitoring_minutes}
        }

    def _create_change_set(
        self, cf: Any, name: str, creating: bool, parameters: dict[str, str], mark: str, rollback: dict[str, Any]
    ) -> Any:
        return cf.create_change_set(
            StackName=self.stack_name,
            ChangeSetName=name,
            ChangeSetType="CREATE" if creating else "UPDATE",
            TemplateURL=self.template_url,
            Capabilities=CAPABILITIES,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
            Tags=[{"Key": FINGERPRINT_TAG, "Value": mark}, {"Key": "Application", "Value": "CareConnect"}],
            Description=f"CareConnect rollout, step {self.name}",
            **self._role(),
            **rollback,
        )

    def _watch(self, ctx: Context, work: dict[str, Any]) -> Any:
        """Report the stack's new events (failures kept in `work`); the stack as it is now (None: gone)."""
        cf = ctx.client("cloudformation")
        for event in new_events(cf, work["stack_id"], work.get("last_event")):
            work["last_event"] = event["EventId"]
            ctx.report.event(self.name, event)
            if event["ResourceStatus"].endswith("FAILED") and event.get("ResourceStatusReason"):
                work.setdefault("failures", []).append(
                    f"{event['LogicalResourceId']} ({event['ResourceType']}): "
                    f"{event['ResourceStatus']}: {event['ResourceStatusReason']}"
                )
        state = describe(cf, work["stack_id"])
        return None if state is None or state.status == "DELETE_COMPLETE" else state


# What the digest leaves out: the code's location and hash (CodeSha256 stands for the code), the
# digest itself, and the shift's parameters (a weight move is no new configuration).
NOT_CONFIGURATION = frozenset(
    name
    for names in (*ARTIFACT_PARAMETERS.values(), *VERSION_PARAMETERS.values(), *SHIFT_PARAMETERS.values())
    for name in names
)


def configuration_digest(parameters: dict[str, str]) -> str:
    """A digest of the stack's parameters but the code's own: the compute stack's versions carry it,
    so a change of configuration (a variable, the memory, the endpoint the carry step brings)
    publishes a new version, as new code does (its CodeSha256)."""
    kept = {name: value for name, value in sorted(parameters.items()) if name not in NOT_CONFIGURATION}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def template_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def latest_event_id(cf: Any, stack_name: str) -> str | None:
    events = cf.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    return events[0]["EventId"] if events else None


def new_events(cf: Any, stack_id: str, last_seen: str | None) -> list[dict[str, Any]]:
    """The stack's events after `last_seen`, oldest first."""
    fresh: list[dict[str, Any]] = []
    try:
        events = cf.describe_stack_events(StackName=stack_id).get("StackEvents", [])
    except ClientError as error:
        if "does not exist" in str(error):
            return []
        raise
    for event in events:
        if event["EventId"] == last_seen:
            break
        fresh.append(event)
    return fresh[::-1]


def change_list(cf: Any, described: dict[str, Any], stack_name: str, change_set: str) -> list[dict[str, str]]:
    pages = [described]
    while pages[-1].get("NextToken"):
        pages.append(
            cf.describe_change_set(ChangeSetName=change_set, StackName=stack_name, NextToken=pages[-1]["NextToken"])
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


def discard(cf: Any, stack_name: str, change_set: str, remove_empty_stack: bool) -> None:
    cf.delete_change_set(ChangeSetName=change_set, StackName=stack_name)
    if remove_empty_stack:  # a CREATE change set left an empty REVIEW_IN_PROGRESS stack
        cf.delete_stack(StackName=stack_name)


@dataclass(frozen=True)
class SetVariables(Step):
    """Merge variables into functions' environments (read, merge, write with the RevisionId, wait
    until the update finished), keeping every other variable. Functions that carry the values
    already are not touched; the environment itself never leaves the step."""

    variables: dict[str, Any]  # name -> literal or Ref
    functions: tuple[Any, ...]  # function names/ARNs, literal or Ref
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # function -> more variables (consumers)
    own_functions: str = ""  # a name pattern matching the functions named by references (the stack's)
    kind: ClassVar[str] = "variables"

    def description(self) -> str:
        return f"set {', '.join(sorted(self.variables))} on {len(self.functions)} function(s)"

    def calls(self, where: Where) -> list[Call]:
        arns = {
            f if f.startswith("arn:") else where.arn("lambda", f"function:{f}")
            for f in self.functions
            if isinstance(f, str)
        }
        if self.own_functions:
            arns.add(where.arn("lambda", f"function:{self.own_functions}"))
        return [
            Call(f"lambda:{a}", arn)
            for arn in sorted(arns)
            for a in ("GetFunctionConfiguration", "UpdateFunctionConfiguration")
        ]

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        values = {name: value_of(value, outputs) for name, value in self.variables.items()}
        if any(value is None for value in values.values()):
            ctx.report.line(self.name, "the stack that produces the value does not exist yet")
            return Progress(True, result=_result(self.name, "planned", "after the API exists"))
        functions = [f for f in (value_of(f, outputs) for f in self.functions) if f]
        lambda_client, changed = ctx.client("lambda"), []
        for function in functions:
            wanted = {**values, **{k: value_of(v, outputs) or "" for k, v in self.extra.get(function, {}).items()}}
            if endpoints.set_variables(lambda_client, function, wanted):  # type: ignore[arg-type]
                changed.append(function)
            ctx.report.line(self.name, f"{function}: {'set' if function in changed else 'already set'}")
        return self.poll(ctx, outputs, {"pending": changed, "changed": changed, "total": len(functions)})

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        pending = [f for f in work["pending"] if not endpoints.settled(ctx.client("lambda"), f)]
        if pending:
            return Progress(False, {**self.bounded(work), "pending": pending}, self.wait)
        changed = work["changed"]
        detail = f"{len(changed)} of {work['total']} function(s) changed"
        return Progress(
            True, result=_result(self.name, "updated" if changed else "unchanged", detail, functions=changed)
        )


def alarm_calls(where: Where, alarm_prefix: str) -> list[Call]:
    """What a step reading the alarms calls: DescribeAlarms, and SetAlarmState on the version
    alarms only (`reset_version_alarms`)."""
    return [
        Call("cloudwatch:DescribeAlarms", where.arn("cloudwatch", "alarm:*")),
        Call("cloudwatch:SetAlarmState", where.arn("cloudwatch", f"alarm:{alarm_prefix}*{VERSION_ALARM_SUFFIX}")),
    ]


def reset_version_alarms(ctx: Context, step: str, alarm_prefix: str) -> None:
    """Before a step's first look at the alarms (rollout.bake.fresh_version_alarms), each reset named."""
    for name in baking.fresh_version_alarms(ctx.client("cloudwatch"), alarm_prefix):
        ctx.report.line(step, f"{name}: ALARM of the version before, reset to OK for the new one")


@dataclass(frozen=True)
class Bake(Step):
    """Watch the stacks' alarms for `seconds`; one in ALARM fails the rollout, naming it."""

    alarm_prefix: str
    seconds: int
    kind: ClassVar[str] = "bake"

    def description(self) -> str:
        return f"watch the {self.alarm_prefix}* alarms for {self.seconds} s"

    def calls(self, where: Where) -> list[Call]:
        return alarm_calls(where, self.alarm_prefix)

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        reset_version_alarms(ctx, self.name, self.alarm_prefix)
        return self.poll(ctx, outputs, {"looks": 0, "checks": baking.checks(self.seconds, self.wait)})

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        alarms = baking.firing(ctx.client("cloudwatch"), self.alarm_prefix)
        if alarms:
            details = [f"{a['AlarmName']}: {a.get('StateReason', 'no reason given')}" for a in alarms]
            for line in details:
                ctx.report.line(self.name, f"ALARM {line}")
            raise baking.AlarmFired(f"bake: {len(alarms)} alarm(s) in ALARM after the rollout", details)
        looks = int(work["looks"])
        if looks >= int(work["checks"]):
            ctx.report.line(self.name, f"no alarm in ALARM for {self.seconds} s")
            return Progress(
                True,
                result=_result(self.name, "succeeded", f"{self.seconds} s, no alarm in ALARM ({self.alarm_prefix}*)"),
            )
        if looks % max(1, int(work["checks"]) // 10) == 0:
            ctx.report.line(self.name, f"no alarm in ALARM ({looks * self.wait:g} of {self.seconds} s)")
        return Progress(False, {**work, "looks": looks + 1}, self.wait)


@dataclass(frozen=True)
class Migrate(Step):
    """Bring the connections table to the version the new handlers need: invoke the compute
    stack's migrate function (handlers/migrate.py: idempotent, under a lock with lock_timeout) and
    fail with its own words when it refuses. It answers within its lock timeout, well inside one
    runner phase."""

    function: Any  # literal or Ref: the compute stack's MigrateAliasArn
    function_pattern: str  # the name as a pattern for the declared call
    lock_timeout_ms: int = 5000
    kind: ClassVar[str] = "migrate"

    def description(self) -> str:
        return f"migrate the connections table (lock_timeout {self.lock_timeout_ms} ms)"

    def calls(self, where: Where) -> list[Call]:
        # The function's live alias (the release's version), never $LATEST.
        return [Call("lambda:InvokeFunction", where.arn("lambda", f"function:{self.function_pattern}:{ALIAS}"))]

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        function = value_of(self.function, outputs)
        if not function:
            raise StageFailed("migrate: the compute stack has no migrate function alias (MigrateAliasArn)")
        answer = ctx.client("lambda").invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps({"lockTimeoutMs": self.lock_timeout_ms}).encode(),
        )
        body = answer["Payload"].read().decode() or "{}"
        try:
            result = json.loads(body)
        except ValueError:
            result = {"error": body[:500]}
        if answer.get("FunctionError") or not isinstance(result, dict) or "error" in result:
            reason = result.get("error") or result.get("errorMessage") if isinstance(result, dict) else body[:500]
            raise StageFailed(
                f"migrate: {function} refused: {reason}; nothing was changed by it",
                [f"{function}: {answer.get('FunctionError') or 'answered an error'}"],
            )
        changed = "changed" if result.get("changed") else "unchanged"
        ctx.report.line(
            self.name,
            f"{function}: schema version {result.get('version')} ({changed}; was {result.get('fromVersion')})",
        )
        detail = f"schema version {result.get('version')}, {changed}"
        return Progress(True, result=_result(self.name, "updated" if result.get("changed") else "unchanged", detail))

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        raise AssertionError("migrate finishes in start")  # pragma: no cover


@dataclass(frozen=True)
class SettleRole(Step):
    """Give a role the compute stack just created time to propagate in IAM before the next stack
    hands it to a service that checks it (the account's API Gateway logging role): done at once
    when there is none or it is old enough, else after waiting out the rest."""

    role_arn: Any  # literal or Ref: the compute stack's ApiGatewayCloudWatchRoleArn ("": none)
    role_pattern: str  # the role's name as a pattern, for the declared call
    seconds: float = ACCOUNT_ROLE_SETTLE_SECONDS
    kind: ClassVar[str] = "settle"

    def description(self) -> str:
        return f"let a new API Gateway logging role propagate in IAM ({self.seconds:g} s from its creation)"

    def calls(self, where: Where) -> list[Call]:
        return [Call("iam:GetRole", where.arn("iam", f"role/{self.role_pattern}", regional=False))]

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        arn = value_of(self.role_arn, outputs) or ""
        if not arn:
            return Progress(True, result=_result(self.name, "unchanged", "no logging role created by this run"))
        answer = ctx.client("iam").get_role(RoleName=arn.rsplit("/", 1)[-1])
        # Measured on IAM's clock (its Date header), not this machine's, which may be off.
        now = email.utils.parsedate_to_datetime(answer["ResponseMetadata"]["HTTPHeaders"]["date"])
        # The Date header has whole seconds (CreateDate does not): up to a second older than it says.
        age = (now - answer["Role"]["CreateDate"]).total_seconds() + 1
        if age >= self.seconds:
            return Progress(True, result=_result(self.name, "unchanged", f"{arn}: {age:.0f} s old"))
        ctx.report.line(self.name, f"{arn}: created {age:.0f} s ago; waiting {self.seconds - age:.0f} s for IAM")
        return Progress(False, {"role": arn}, self.seconds - age)

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        return Progress(True, result=_result(self.name, "succeeded", f"{work['role']}: waited for IAM"))


KINDS: dict[str, type[Step]] = {cls.kind: cls for cls in (DeployStack, SetVariables, Bake, Migrate, SettleRole)}


def from_dict(data: dict[str, Any]) -> Step:
    """A step from its plan document (the state machine's input)."""
    fields = {k: v for k, v in data.items() if k != "kind"}
    for name in ("functions", "code_from", "no_echo", "rollback_alarms"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return KINDS[data["kind"]](**fields)
