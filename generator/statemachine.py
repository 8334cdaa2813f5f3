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
from typing import Any

from generator.stages import (
    ENDPOINT_UPDATE,
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


def stack_states(prefix: str, stage: str, sources: dict[str, str], done: str) -> dict[str, State]:
    """The states that bring one stack to its template; `sources` maps each template parameter
    to the JSONPath (or intrinsic) giving its value. Ends in `done` with outputs at $.outputs."""
    work = f"$.work.{prefix}"
    stack_name = f"$.stacks.{stage}.name"
    status = f"{work}.status"
    parameters = [{"ParameterKey": name, "ParameterValue.$": path} for name, path in sorted(sources.items())]
    describe = {"StackName.$": stack_name}
    states: dict[str, State] = {
        f"{prefix}Describe": _task(
            "cloudformation:describeStacks",
            describe,
            f"{prefix}Status",
            ResultPath=work,
            ResultSelector={"status.$": "States.ArrayGetItem($.Stacks[*].StackStatus, 0)"},
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": work, "Next": f"{prefix}Missing"}],
        ),
        f"{prefix}Missing": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": f"{work}.Cause",
                    "StringMatches": "*does not exist*",
                    "Next": f"{prefix}PlanCreate",
                },
            ],
            "Default": f"{prefix}DescribeFailed",
        },
        f"{prefix}DescribeFailed": _fail("DescribeFailed", f"{stage}: the stack could not be described"),
        f"{prefix}Status": {
            "Type": "Choice",
            "Choices": [
                {**_any_of(status, UPDATABLE), "Next": f"{prefix}PlanUpdate"},
                {
                    "Variable": status,
                    "StringEquals": "REVIEW_IN_PROGRESS",
                    "Next": f"{prefix}PlanCreate",
                },
                {
                    "Variable": status,
                    "StringEquals": "ROLLBACK_COMPLETE",
                    "Next": f"{prefix}Delete",
                },
                {
                    "Variable": status,
                    "StringEquals": "UPDATE_ROLLBACK_FAILED",
                    "Next": f"{prefix}RollbackFailed",
                },
            ],
            "Default": f"{prefix}Busy",
        },
        f"{prefix}Busy": _fail_with(
            "StackBusy",
            f"States.Format('{{}} is {{}}: someone else is changing it or it is stuck; wait until it is "
            f"stable, then start the rollout again', {stack_name}, {status})",
        ),
        f"{prefix}RollbackFailed": _fail_with(
            "UpdateRollbackFailed",
            f"States.Format('{{}} is UPDATE_ROLLBACK_FAILED: fix the resources named in its events, run "
            f"continue-update-rollback, then start again', {stack_name})",
        ),
        f"{prefix}Delete": _task("cloudformation:deleteStack", describe, f"{prefix}DeletedStart", ResultPath=IGNORED),
        f"{prefix}PlanCreate": {
            "Type": "Pass",
            "Result": "CREATE",
            "ResultPath": f"{work}.type",
            "Next": f"{prefix}CreateChangeSet",
        },
        f"{prefix}PlanUpdate": {
            "Type": "Pass",
            "Result": "UPDATE",
            "ResultPath": f"{work}.type",
            "Next": f"{prefix}CreateChangeSet",
        },
        f"{prefix}CreateChangeSet": _task(
            "cloudformation:createChangeSet",
            {
                "StackName.$": stack_name,
                "ChangeSetName.$": f"States.Format('{{}}-{prefix.lower()}', $.changeSetName)",
                "ChangeSetType.$": f"{work}.type",
                "TemplateURL.$": f"$.stacks.{stage}.templateUrl",
                "Capabilities": ["CAPABILITY_NAMED_IAM"],
                "RoleARN": CLOUDFORMATION_ROLE,
                "Parameters": parameters,
            },
            f"{prefix}ChangeSetStart",
            ResultPath=f"{work}.changeSet",
            ResultSelector={"id.$": "$.Id"},
        ),
        f"{prefix}DeleteChangeSet": _task(
            "cloudformation:deleteChangeSet",
            {"ChangeSetName.$": f"{work}.changeSet.id", "StackName.$": stack_name},
            f"{prefix}Outputs",
            ResultPath=IGNORED,
        ),
        f"{prefix}ChangeSetFailed": _fail_with("ChangeSetFailed", f"{work}.changeSetReason.reason"),
        f"{prefix}Execute": _task(
            "cloudformation:executeChangeSet",
            {"ChangeSetName.$": f"{work}.changeSet.id", "StackName.$": stack_name},
            f"{prefix}StackStart",
            ResultPath=IGNORED,
        ),
        # A failed stack's cause is its StackStatusReason; without one, its final status.
        f"{prefix}Failed": _task(
            "cloudformation:describeStacks",
            describe,
            f"{prefix}FailedWithReason",
            ResultPath=f"{work}.failure",
            ResultSelector={"reason.$": "States.ArrayGetItem($.Stacks[*].StackStatusReason, 0)"},
            Catch=[
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": f"{work}.failureLookup",
                    "Next": f"{prefix}FailedWithStatus",
                }
            ],
        ),
        f"{prefix}DeleteFailed": _fail("StackFailed", f"{stage}: deleting the rolled-back stack failed"),
        f"{prefix}FailedWithReason": _fail_with(
            "StackFailed", f"States.Format('{{}}: {{}}', {stack_name}, {work}.failure.reason)"
        ),
        f"{prefix}FailedWithStatus": _fail_with(
            "StackFailed",
            f"States.Format('{{}} ended {{}}; its events name the failing resources', "
            f"{stack_name}, {work}.stackStatus.status)",
        ),
        f"{prefix}Outputs": _task(
            "cloudformation:describeStacks",
            describe,
            done,
            ResultPath=f"$.outputs.{stage}",
            ResultSelector={"list.$": "States.ArrayGetItem($.Stacks[*].Outputs, 0)"},
        ),
    }
    change_set = f"{work}.changeSetStatus"
    states |= poll_loop(
        f"{prefix}Deleted",
        _task(
            "cloudformation:describeStacks",
            describe,
            "",
            ResultSelector={"status.$": "States.ArrayGetItem($.Stacks[*].StackStatus, 0)"},
            Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": f"{work}.deleted", "Next": f"{prefix}PlanCreate"}],
        ),
        [
            {
                "Variable": f"{work}.deleteStatus.status",
                "StringEquals": "DELETE_COMPLETE",
                "Next": f"{prefix}PlanCreate",
            },
            {
                "Variable": f"{work}.deleteStatus.status",
                "StringEquals": "DELETE_IN_PROGRESS",
                "Next": f"{prefix}DeletedCount",
            },
        ],
        f"{prefix}DeleteFailed",
        f"{work}.deleteStatus",
    )
    states |= poll_loop(
        f"{prefix}ChangeSet",
        _task(
            "cloudformation:describeChangeSet",
            {"ChangeSetName.$": f"{work}.changeSet.id", "StackName.$": stack_name},
            "",
            ResultSelector={"status.$": "$.Status"},
        ),
        [
            {"Variable": f"{change_set}.status", "StringEquals": "CREATE_COMPLETE", "Next": f"{prefix}Execute"},
            {"Variable": f"{change_set}.status", "StringEquals": "FAILED", "Next": f"{prefix}ChangeSetReason"},
        ],
        f"{prefix}ChangeSetCount",
        change_set,
    )
    reason = f"{work}.changeSetReason.reason"
    states |= {
        # A FAILED change set always has a StatusReason; "no changes" is a skip, not a failure.
        f"{prefix}ChangeSetReason": _task(
            "cloudformation:describeChangeSet",
            {"ChangeSetName.$": f"{work}.changeSet.id", "StackName.$": stack_name},
            f"{prefix}NoChanges",
            ResultPath=f"{work}.changeSetReason",
            ResultSelector={"reason.$": "$.StatusReason"},
        ),
        f"{prefix}NoChanges": {
            "Type": "Choice",
            "Choices": [
                {
                    **_any_of(reason, tuple(f"*{text}*" for text in NO_CHANGES), "StringMatches"),
                    "Next": f"{prefix}DeleteChangeSet",
                }
            ],
            "Default": f"{prefix}ChangeSetFailed",
        },
    }
    stack_status = f"{work}.stackStatus.status"
    states |= poll_loop(
        f"{prefix}Stack",
        _task(
            "cloudformation:describeStacks",
            describe,
            "",
            ResultSelector={"status.$": "States.ArrayGetItem($.Stacks[*].StackStatus, 0)"},
        ),
        [
            {**_any_of(stack_status, SUCCESS), "Next": f"{prefix}Outputs"},
            {"Variable": stack_status, "StringMatches": "*_IN_PROGRESS", "Next": f"{prefix}StackCount"},
        ],
        f"{prefix}Failed",
        f"{work}.stackStatus",
    )
    return states


def endpoint_states(first: str, done: str) -> dict[str, State]:
    """Merge the endpoint into each handler function, in turn; functions carrying it are skipped."""
    update = ENDPOINT_UPDATE
    value = "$.endpoint.value"
    states: dict[str, State] = {
        first: {
            "Type": "Pass",
            "Parameters": {"value.$": output_path(update.value_from)},
            "ResultPath": "$.endpoint",
            "Next": "Function0Read",
        },
    }
    for index, source in enumerate(update.functions_from):
        name = f"Function{index}"
        after = f"Function{index + 1}Read" if index + 1 < len(update.functions_from) else done
        function = {"FunctionName.$": output_path(source)}
        current = f"$.work.{name}.variables.{update.variable}"
        states |= {
            f"{name}Read": _task(
                "lambda:getFunctionConfiguration",
                function,
                f"{name}Check",
                ResultPath=f"$.work.{name}",
                ResultSelector={"variables.$": "$.Environment.Variables", "revision.$": "$.RevisionId"},
            ),
            f"{name}Check": {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            {"Variable": current, "IsPresent": True},
                            {"Variable": current, "StringEqualsPath": value},
                        ],
                        "Next": after,
                    }
                ],
                "Default": f"{name}Patch",
            },
            f"{name}Patch": {
                "Type": "Pass",
                "Parameters": {f"{update.variable}.$": value},
                "ResultPath": f"$.work.{name}.patch",
                "Next": f"{name}Update",
            },
            f"{name}Update": _task(
                "lambda:updateFunctionConfiguration",
                {
                    **function,
                    "RevisionId.$": f"$.work.{name}.revision",
                    "Environment": {
                        "Variables.$": f"States.JsonMerge($.work.{name}.variables, $.work.{name}.patch, false)"
                    },
                },
                f"{name}UpdatedStart",
                ResultPath=IGNORED,
                Retry=[
                    *RETRY,
                    {
                        "ErrorEquals": ["Lambda.ResourceConflictException"],
                        "IntervalSeconds": 5,
                        "MaxAttempts": 10,
                        "BackoffRate": 1.5,
                    },
                ],
            ),
            f"{name}Failed": _fail("FunctionUpdateFailed", f"{name}: the configuration update failed"),
        }
        status = f"$.work.{name}.updated.status"
        states |= poll_loop(
            f"{name}Updated",
            _task("lambda:getFunctionConfiguration", function, "", ResultSelector={"status.$": "$.LastUpdateStatus"}),
            [
                {"Variable": status, "StringEquals": "Successful", "Next": after},
                {"Variable": status, "StringEquals": "InProgress", "Next": f"{name}UpdatedCount"},
            ],
            f"{name}Failed",
            f"$.work.{name}.updated",
        )
    return states


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
    states |= stack_states(f"Carry{_title(carry_stage)}", carry_stage, carried, "Done")
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
