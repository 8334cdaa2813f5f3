"""The rollout as an AWS Step Functions state machine (Amazon States Language, JSONPath mode).

Generated from the same stages as the local engine (`generator.stages`): stage order and the wiring
of outputs into parameters are defined once. Per stack: describe it; refuse a busy or stuck
stack; delete and re-create a first create that rolled back; plan a change set (CREATE or
UPDATE), skip one without changes, execute it and wait; read its outputs. Then merge the
management endpoint into every handler function (States.JsonMerge, with the RevisionId) and
carry it into the compute stack's parameter. Every wait is a bounded Wait/describe/Choice loop;
every Task retries throttling and transient errors.

Execution input (built by `rollout.sfn_engine`):
  {"changeSetName": "...", "pollSeconds": 5, "stacks": {<stage>: {"name": ...,
   "templateUrl": <S3 URL in the artifacts bucket>, "parameters": {<every template parameter>: <value>}}}}
Each stack gets its own change set, `<changeSetName>-<state prefix>`: a stack keeps its executed
change set, so a name is never used twice on one stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from generator.stages import (
    ENDPOINT_UPDATE,
    MAX_CONSUMERS,
    NO_CHANGES,
    STACK_INPUTS,
    STACK_TEMPLATES,
    SUCCESS,
    UPDATABLE,
    Source,
)

# ${Partition} and ${CloudFormationRoleArn} are filled by the template's Fn::Sub (see `substituted`).
SDK = "arn:${Partition}:states:::aws-sdk:"
POLL_SECONDS = 5  # the input's pollSeconds (the CLI passes this; tests pass 0)
MAX_POLLS = 720  # checks per wait (1 hour at 5 s); bounds the execution history (25,000 events)
# CloudFormation's SDK errors (throttling included) all arrive as CloudFormationException, so
# they get a short retry; Lambda names its throttling and transient errors.
RETRY = [
    {
        "ErrorEquals": ["CloudFormation.CloudFormationException"],
        "IntervalSeconds": 1,
        "MaxAttempts": 3,
        "BackoffRate": 2.0,
    },
    {
        "ErrorEquals": ["Lambda.TooManyRequestsException", "Lambda.ServiceException", "States.Timeout"],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
    },
]
CLOUDFORMATION_ROLE = "${CloudFormationRoleArn}"
IGNORED = "$.ignored"  # where results nobody reads go (a null ResultPath loses the input in moto)

State = dict[str, Any]


def _title(stage: str) -> str:
    return stage[0].upper() + stage[1:]


def output_path(source: Source) -> str:
    stage, key = source
    return f"States.ArrayGetItem($.outputs.{stage}.list[?(@.OutputKey == '{key}')].OutputValue, 0)"


def _task(resource: str, parameters: dict[str, Any], next_state: str, **extra: Any) -> State:
    return {
        "Type": "Task",
        "Resource": f"{SDK}{resource}",
        "Parameters": parameters,
        "Retry": RETRY,
        "Next": next_state,
        **extra,
    }


def _fail(error: str, cause: str) -> State:
    return {"Type": "Fail", "Error": error, "Cause": cause}


def _fail_with(error: str, cause_path: str) -> State:
    """A Fail state whose cause is computed from the execution's data (a path or States.Format)."""
    return {"Type": "Fail", "Error": error, "CausePath": cause_path}


def poll_loop(name: str, check: State, rules: list[State], default: str, result: str) -> dict[str, State]:
    """Reset a counter, then Wait -> `check` -> Choice. The bound is the first rule, so no loop
    outlives MAX_POLLS; rules that go on waiting name `<name>Count`."""
    counter = f"$.polls.{name}"
    return {
        f"{name}Start": {
            "Type": "Pass",
            "Result": {"n": 0},
            "ResultPath": counter,
            "Next": f"{name}Wait",
        },
        f"{name}Wait": {"Type": "Wait", "SecondsPath": "$.pollSeconds", "Next": f"{name}Check"},
        f"{name}Check": {**check, "ResultPath": result, "Next": f"{name}Decide"},
        f"{name}Decide": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": f"{counter}.n",
                    "NumericGreaterThanEquals": MAX_POLLS,
                    "Next": f"{name}TimedOut",
                },
                *rules,
            ],
            "Default": default,
        },
        f"{name}Count": {
            "Type": "Pass",
            "Parameters": {"n.$": f"States.MathAdd({counter}.n, 1)"},
            "ResultPath": counter,
            "Next": f"{name}Wait",
        },
        f"{name}TimedOut": _fail_with(
            "TimedOut",
            f"States.Format('{name}: still waiting after {{}} checks {{}} s apart', {counter}.n, $.pollSeconds)",
        ),
    }


def _any_of(variable: str, values: tuple[str, ...], test: str = "StringEquals") -> State:
    return {"Or": [{"Variable": variable, test: value} for value in values]}


@dataclass(frozen=True)
class _Stack:
    """Names and paths of one stack's states: `<prefix>Describe`, `$.work.<prefix>`, ..."""

    prefix: str
    stage: str

    @property
    def work(self) -> str:
        return f"$.work.{self.prefix}"

    @property
    def name_path(self) -> str:
        return f"$.stacks.{self.stage}.name"

    def state(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def describe(self, next_state: str, **extra: Any) -> State:
        return _task("cloudformation:describeStacks", {"StackName.$": self.name_path}, next_state, **extra)

    def status_of_describe(self, next_state: str, **extra: Any) -> State:
        selector = {"status.$": "States.ArrayGetItem($.Stacks[*].StackStatus, 0)"}
        return self.describe(next_state, ResultSelector=selector, **extra)

    def change_set_task(self, api: str, next_state: str, **extra: Any) -> State:
        parameters = {"ChangeSetName.$": f"{self.work}.changeSet.id", "StackName.$": self.name_path}
        return _task(f"cloudformation:{api}", parameters, next_state, **extra)


def stack_states(prefix: str, stage: str, sources: dict[str, str], done: str) -> dict[str, State]:
    """The states that bring one stack to its template; `sources` maps each template parameter
    to the JSONPath (or intrinsic) giving its value. Ends in `done` with outputs at $.outputs."""
    stack = _Stack(prefix, stage)
    return {**_inspect(stack), **_recreate(stack), **_change_set(stack, sources), **_wait_for_stack(stack, done)}


def _inspect(s: _Stack) -> dict[str, State]:
    """Describe the stack and decide: create, update, re-create, or refuse (busy or stuck)."""
    status = f"{s.work}.status"
    missing = {"Variable": f"{s.work}.Cause", "StringMatches": "*does not exist*", "Next": s.state("PlanCreate")}
    return {
        s.state("Describe"): s.status_of_describe(
            s.state("Status"), ResultPath=s.work,
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": s.work, "Next": s.state("Missing")}],
        ),
        s.state("Missing"): {"Type": "Choice", "Choices": [missing], "Default": s.state("DescribeFailed")},
        s.state("DescribeFailed"): _fail("DescribeFailed", f"{s.stage}: the stack could not be described"),
        s.state("Status"): {
            "Type": "Choice",
            "Choices": [
                {**_any_of(status, UPDATABLE), "Next": s.state("PlanUpdate")},
                {"Variable": status, "StringEquals": "REVIEW_IN_PROGRESS", "Next": s.state("PlanCreate")},
                {"Variable": status, "StringEquals": "ROLLBACK_COMPLETE", "Next": s.state("Delete")},
                {"Variable": status, "StringEquals": "UPDATE_ROLLBACK_FAILED", "Next": s.state("RollbackFailed")},
            ],
            "Default": s.state("Busy"),
        },
        s.state("Busy"): _fail_with(
            "StackBusy",
            f"States.Format('{{}} is {{}}: someone else is changing it or it is stuck; wait until it is "
            f"stable, then start the rollout again', {s.name_path}, {status})",
        ),
        s.state("RollbackFailed"): _fail_with(
            "UpdateRollbackFailed",
            f"States.Format('{{}} is UPDATE_ROLLBACK_FAILED: fix the resources named in its events, run "
            f"continue-update-rollback, then start again', {s.name_path})",
        ),
    }  # fmt: skip


def _recreate(s: _Stack) -> dict[str, State]:
    """A first create that rolled back: delete it, wait, then create it again."""
    deleted = f"{s.work}.deleteStatus.status"
    return {
        s.state("Delete"): _task("cloudformation:deleteStack", {"StackName.$": s.name_path},
                                 s.state("DeletedStart"), ResultPath=IGNORED),
        s.state("DeleteFailed"): _fail("StackFailed", f"{s.stage}: deleting the rolled-back stack failed"),
        **poll_loop(
            s.state("Deleted"),
            s.status_of_describe("", Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": f"{s.work}.deleted",
                                             "Next": s.state("PlanCreate")}]),
            [{"Variable": deleted, "StringEquals": "DELETE_COMPLETE", "Next": s.state("PlanCreate")},
             {"Variable": deleted, "StringEquals": "DELETE_IN_PROGRESS", "Next": s.state("DeletedCount")}],
            s.state("DeleteFailed"), f"{s.work}.deleteStatus",
        ),
    }  # fmt: skip


def _change_set(s: _Stack, sources: dict[str, str]) -> dict[str, State]:
    """Create a change set (CREATE or UPDATE), wait for it, skip it when it has no changes (the
    stack's outputs are read as they are), else execute it."""
    parameters = [{"ParameterKey": name, "ParameterValue.$": path} for name, path in sorted(sources.items())]
    status, reason = f"{s.work}.changeSetStatus", f"{s.work}.changeSetReason.reason"
    no_changes = tuple(f"*{text}*" for text in NO_CHANGES)
    return {
        s.state("PlanCreate"): {"Type": "Pass", "Result": "CREATE", "ResultPath": f"{s.work}.type",
                                "Next": s.state("CreateChangeSet")},
        s.state("PlanUpdate"): {"Type": "Pass", "Result": "UPDATE", "ResultPath": f"{s.work}.type",
                                "Next": s.state("CreateChangeSet")},
        s.state("CreateChangeSet"): _task(
            "cloudformation:createChangeSet",
            {"StackName.$": s.name_path,
             "ChangeSetName.$": f"States.Format('{{}}-{s.prefix.lower()}', $.changeSetName)",
             "ChangeSetType.$": f"{s.work}.type", "TemplateURL.$": f"$.stacks.{s.stage}.templateUrl",
             "Capabilities": ["CAPABILITY_NAMED_IAM"], "RoleARN": CLOUDFORMATION_ROLE, "Parameters": parameters},
            s.state("ChangeSetStart"), ResultPath=f"{s.work}.changeSet", ResultSelector={"id.$": "$.Id"},
        ),
        **poll_loop(
            s.state("ChangeSet"),
            s.change_set_task("describeChangeSet", "", ResultSelector={"status.$": "$.Status"}),
            [{"Variable": f"{status}.status", "StringEquals": "CREATE_COMPLETE", "Next": s.state("Execute")},
             {"Variable": f"{status}.status", "StringEquals": "FAILED", "Next": s.state("ChangeSetReason")}],
            s.state("ChangeSetCount"), status,
        ),
        # A FAILED change set always has a StatusReason; "no changes" is a skip, not a failure.
        s.state("ChangeSetReason"): s.change_set_task(
            "describeChangeSet", s.state("NoChanges"), ResultPath=f"{s.work}.changeSetReason",
            ResultSelector={"reason.$": "$.StatusReason"},
        ),
        s.state("NoChanges"): {"Type": "Choice",
                               "Choices": [{**_any_of(reason, no_changes, "StringMatches"),
                                            "Next": s.state("DeleteChangeSet")}],
                               "Default": s.state("ChangeSetFailed")},
        s.state("DeleteChangeSet"): s.change_set_task("deleteChangeSet", s.state("Outputs"), ResultPath=IGNORED),
        s.state("ChangeSetFailed"): _fail_with("ChangeSetFailed", reason),
        s.state("Execute"): s.change_set_task("executeChangeSet", s.state("StackStart"), ResultPath=IGNORED),
    }  # fmt: skip


def _wait_for_stack(s: _Stack, done: str) -> dict[str, State]:
    """Wait for the executed change set; read the outputs, or fail with the stack's reason."""
    status = f"{s.work}.stackStatus.status"
    return {
        **poll_loop(
            s.state("Stack"), s.status_of_describe(""),
            [{**_any_of(status, SUCCESS), "Next": s.state("Outputs")},
             {"Variable": status, "StringMatches": "*_IN_PROGRESS", "Next": s.state("StackCount")}],
            s.state("Failed"), f"{s.work}.stackStatus",
        ),
        # A failed stack's cause is its StackStatusReason; without one, its final status.
        s.state("Failed"): s.describe(
            s.state("FailedWithReason"), ResultPath=f"{s.work}.failure",
            ResultSelector={"reason.$": "States.ArrayGetItem($.Stacks[*].StackStatusReason, 0)"},
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": f"{s.work}.failureLookup",
                    "Next": s.state("FailedWithStatus")}],
        ),
        s.state("FailedWithReason"): _fail_with(
            "StackFailed", f"States.Format('{{}}: {{}}', {s.name_path}, {s.work}.failure.reason)"),
        s.state("FailedWithStatus"): _fail_with(
            "StackFailed", f"States.Format('{{}} ended {{}}; its events name the failing resources', "
                           f"{s.name_path}, {status})"),
        s.state("Outputs"): s.describe(done, ResultPath=f"$.outputs.{s.stage}",
                                       ResultSelector={"list.$": "States.ArrayGetItem($.Stacks[*].Outputs, 0)"}),
    }  # fmt: skip


def endpoint_states(first: str, done: str) -> dict[str, State]:
    """Merge the endpoint into each handler function, in turn, then into every endpoint consumer
    of the input (`$.consumers`, functions outside the stacks); functions carrying it are skipped."""
    update = ENDPOINT_UPDATE
    states: dict[str, State] = {
        first: {
            "Type": "Pass",
            "Parameters": {"value.$": output_path(update.value_from)},
            "ResultPath": "$.endpoint",
            "Next": "Function0Read",
        },
    }
    for index, source in enumerate(update.functions_from):
        after = f"Function{index + 1}Read" if index + 1 < len(update.functions_from) else "Consumer0Present"
        states |= merge_endpoint(f"Function{index}", output_path(source), after)
    # The consumers, unrolled (a Map's item context is not available in every Step Functions
    # implementation the rollout is rehearsed on): each slot runs only when the list reaches it.
    for index in range(MAX_CONSUMERS):
        name, after = f"Consumer{index}", f"Consumer{index + 1}Present" if index + 1 < MAX_CONSUMERS else done
        states[f"{name}Present"] = {
            "Type": "Choice",
            "Choices": [{"Variable": f"$.consumers[{index}]", "IsPresent": True, "Next": f"{name}Read"}],
            "Default": done,
        }
        states |= merge_endpoint(name, f"States.ArrayGetItem($.consumers, {index})", after)
    return states


def merge_endpoint(name: str, function_path: str, after: str) -> dict[str, State]:
    """Read one function's environment, skip it if it carries the endpoint (`$.endpoint.value`),
    else merge the variable in, update with the RevisionId and wait for the update."""
    variable, value = ENDPOINT_UPDATE.variable, "$.endpoint.value"
    function = {"FunctionName.$": function_path}
    current = f"$.work.{name}.variables.{variable}"
    conflict = {"ErrorEquals": ["Lambda.ResourceConflictException"], "IntervalSeconds": 5, "MaxAttempts": 10,
                "BackoffRate": 1.5}  # fmt: skip
    status = f"$.work.{name}.updated.status"
    return {
        f"{name}Read": _task("lambda:getFunctionConfiguration", function, f"{name}Check", ResultPath=f"$.work.{name}",
                             ResultSelector={"variables.$": "$.Environment.Variables", "revision.$": "$.RevisionId"}),
        f"{name}Check": {"Type": "Choice", "Choices": [
            {"And": [{"Variable": current, "IsPresent": True}, {"Variable": current, "StringEqualsPath": value}],
             "Next": after}], "Default": f"{name}Patch"},
        f"{name}Patch": {"Type": "Pass", "Parameters": {f"{variable}.$": value}, "ResultPath": f"$.work.{name}.patch",
                         "Next": f"{name}Update"},
        f"{name}Update": _task(
            "lambda:updateFunctionConfiguration",
            {**function, "RevisionId.$": f"$.work.{name}.revision",
             "Environment": {"Variables.$": f"States.JsonMerge($.work.{name}.variables, $.work.{name}.patch, false)"}},
            f"{name}UpdatedStart", ResultPath=IGNORED, Retry=[*RETRY, conflict]),
        f"{name}Failed": _fail("FunctionUpdateFailed", f"{name}: the configuration update failed"),
        **poll_loop(
            f"{name}Updated",
            _task("lambda:getFunctionConfiguration", function, "", ResultSelector={"status.$": "$.LastUpdateStatus"}),
            [{"Variable": status, "StringEquals": "Successful", "Next": after},
             {"Variable": status, "StringEquals": "InProgress", "Next": f"{name}UpdatedCount"}],
            f"{name}Failed", f"$.work.{name}.updated",
        ),
    }  # fmt: skip


def bake_states(done: str) -> dict[str, State]:
    """Watch the stacks' alarms: `$.bake.checks` looks after the first, `$.bake.waitSeconds` apart;
    any alarm in ALARM fails the execution naming it and its reason (the local engine's
    rollout/bake.py). 0 checks skip it. MAX_POLLS bounds the loop whatever the input says (the
    input stretches the interval so a long bake fits: rollout/sfn_engine.py)."""
    found = "$.bake.found"
    return {
        "Bake": {"Type": "Choice", "Choices": [{"Variable": "$.bake.checks", "NumericLessThanEquals": 0, "Next": done}],
                 "Default": "BakeStart"},
        "BakeStart": {"Type": "Pass", "Result": {"n": 0}, "ResultPath": "$.polls.Bake", "Next": "BakeCheck"},
        "BakeCheck": _task(
            "cloudwatch:describeAlarms",
            {"AlarmNamePrefix.$": "$.bake.alarmPrefix", "StateValue": "ALARM", "AlarmTypes": ["MetricAlarm"]},
            "BakeFound",
            ResultSelector={"count.$": "States.ArrayLength($.MetricAlarms)", "alarms.$": "$.MetricAlarms"},
            ResultPath=found,
        ),
        "BakeFound": {"Type": "Choice", "Choices": [{"Variable": f"{found}.count", "NumericGreaterThan": 0,
                                                     "Next": "BakeAlarms"}], "Default": "BakeDecide"},
        "BakeDecide": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.polls.Bake.n", "NumericGreaterThanEquals": MAX_POLLS, "Next": done},
                {"Variable": "$.polls.Bake.n", "NumericGreaterThanEqualsPath": "$.bake.checks", "Next": done},
            ],
            "Default": "BakeWait",
        },
        "BakeWait": {"Type": "Wait", "SecondsPath": "$.bake.waitSeconds", "Next": "BakeCount"},
        "BakeCount": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.polls.Bake.n, 1)"},
                      "ResultPath": "$.polls.Bake", "Next": "BakeCheck"},
        # Only reached with at least one alarm, so the [*] paths match.
        "BakeAlarms": {"Type": "Pass", "Parameters": {"names.$": f"{found}.alarms[*].AlarmName",
                                                      "reasons.$": f"{found}.alarms[*].StateReason"},
                       "ResultPath": f"{found}.named", "Next": "AlarmFired"},
        "AlarmFired": _fail_with(
            "AlarmFired",
            f"States.Format('bake: {{}} alarm(s) in ALARM after the rollout: {{}}; reasons: {{}}', {found}.count, "
            f"{found}.named.names, {found}.named.reasons)",
        ),
    }  # fmt: skip


def parameter_sources(stage: str, template_parameters: list[str], forward: set[str]) -> dict[str, str]:
    """Where each parameter comes from: an earlier stage's output, or the execution input."""
    wired = {param: output_path(source) for param, source in STACK_INPUTS[stage].items() if source[0] in forward}
    return {name: wired.get(name, f"$.stacks.{stage}.parameters.{name}") for name in template_parameters}


def with_poll_limit(machine: dict[str, Any], max_polls: int) -> dict[str, Any]:
    """The same machine with every wait bounded by `max_polls` checks (tests use a small one)."""
    for state in machine["States"].values():
        for rule in state.get("Choices", []):
            if str(rule.get("Variable", "")).startswith("$.polls.") and "NumericGreaterThanEquals" in rule:
                rule["NumericGreaterThanEquals"] = max_polls
    return machine


def definition(template_parameters: dict[str, list[str]]) -> dict[str, Any]:
    """The whole state machine, for templates with these parameter names (by stage). Its
    ${Partition} and ${CloudFormationRoleArn} are filled by the template (see `substituted`)."""
    stages = list(STACK_TEMPLATES)
    states: dict[str, State] = {}
    done: set[str] = set()
    for index, stage in enumerate(stages):
        after = f"{_title(stages[index + 1])}Describe" if index + 1 < len(stages) else "Endpoint"
        states |= stack_states(_title(stage), stage, parameter_sources(stage, template_parameters[stage], done), after)
        done.add(stage)
    carry_stage, carry_parameter = ENDPOINT_UPDATE.carried_by
    states |= endpoint_states("Endpoint", f"Carry{_title(carry_stage)}Describe")
    carried = parameter_sources(carry_stage, template_parameters[carry_stage], done) | {
        carry_parameter: "$.endpoint.value"
    }
    states |= stack_states(f"Carry{_title(carry_stage)}", carry_stage, carried, "Bake")
    states |= bake_states("Done")
    states["Done"] = {"Type": "Succeed"}
    return {
        "Comment": "CareConnect WebSocket rollout: compute stack, websocket stack, endpoint (generated)",
        "QueryLanguage": "JSONPath",
        "StartAt": f"{_title(stages[0])}Describe",
        "States": states,
    }


def substituted(machine: dict[str, Any], values: dict[str, str]) -> str:
    """The definition as a string with its ${...} substitutions filled, as CloudFormation does."""
    text = json.dumps(machine)
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return text
