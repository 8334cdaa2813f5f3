"""The rollout as a Step Functions state machine: a generic skeleton generated from the step list
(`generator.stages.STEP_ORDER`). Every step is the same four states:

  <Step>        Task: the runner function runs the step's start (rollout/runner.py)
  <Step>Decide  Choice: done -> the next step, else wait
  <Step>Wait    Wait: the seconds the step asked for (nothing billed while CloudFormation works)
  <Step>Poll    Task: the runner runs the step's poll -> <Step>Decide

The behaviour (change sets, the endpoint merge, the bake, their bounds) is the steps' Python code,
the same the local executor runs. The state data is the plan (the execution input) and the memo
the runner returns; Retry names the errors Lambda tasks raise, and Catch takes States.TaskFailed
and States.Timeout (never States.Runtime, which no Catch takes on AWS) to the Failed state.

The execution ends through a release state either way (`Release` before Done, `ReleaseAfterFailure`
before Failed): the runner removes the environment's lock this run holds (rollout/unlock_step.py),
so it never outlives the execution. A release that fails does not change how the execution ends
(the lock is then stale, and the next run takes it over since the execution has ended).

${Partition} and ${RunnerArn} are filled by the template's Fn::Sub.
"""

from __future__ import annotations

import json
from typing import Any

from generator.stages import STEP_ORDER

INVOKE = "arn:${Partition}:states:::lambda:invoke"
RUNNER = "${RunnerArn}"
RUNNER_TIMEOUT_SECONDS = 120  # one phase makes a few calls; the Task gives up a little later
# What Lambda's Invoke raises when the service, not the runner, failed: retried with backoff.
RETRY = [
    {
        "ErrorEquals": [
            "Lambda.ClientExecutionTimeoutException",
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
    }
]
RELEASE_STEP = "unlock"  # rollout/unlock_step.py NAME
MEMO = {key: f"$.Payload.{key}" for key in ("outputs", "work", "results", "done", "wait")}

State = dict[str, Any]


def title(step: str) -> str:
    return step[0].upper() + step[1:]


def _task(step: str, phase: str, next_state: str) -> State:
    return {
        "Type": "Task",
        "Resource": INVOKE,
        "Parameters": {
            "FunctionName": RUNNER,
            "Payload": {"plan.$": "$.plan", "memo.$": "$.memo", "step": step, "phase": phase},
        },
        "TimeoutSeconds": RUNNER_TIMEOUT_SECONDS,
        "ResultSelector": {f"{key}.$": path for key, path in MEMO.items()},
        "ResultPath": "$.memo",
        "Retry": RETRY,
        "Catch": [
            {"ErrorEquals": ["States.TaskFailed", "States.Timeout"], "ResultPath": "$.error", "Next": RELEASE_FAILED}
        ],
        "Next": next_state,
    }


RELEASE, RELEASE_FAILED = "Release", "ReleaseAfterFailure"


def _release(result_path: str, next_state: str) -> State:
    """The runner releases the run's lock; the outcome of the execution stays what it was."""
    return {
        "Type": "Task",
        "Resource": INVOKE,
        "Parameters": {
            "FunctionName": RUNNER,
            "Payload": {"plan.$": "$.plan", "memo.$": "$.memo", "step": RELEASE_STEP, "phase": "start"},
        },
        "TimeoutSeconds": RUNNER_TIMEOUT_SECONDS,
        "ResultSelector": {f"{key}.$": path for key, path in MEMO.items()},
        "ResultPath": result_path,
        "Retry": RETRY,
        "Catch": [
            {"ErrorEquals": ["States.TaskFailed", "States.Timeout"], "ResultPath": "$.releaseError", "Next": next_state}
        ],
        "Next": next_state,
    }


def definition(steps: tuple[str, ...] = STEP_ORDER) -> dict[str, Any]:
    states: dict[str, State] = {}
    for index, step in enumerate(steps):
        name = title(step)
        after = title(steps[index + 1]) if index + 1 < len(steps) else RELEASE
        states[name] = _task(step, "start", f"{name}Decide")
        states[f"{name}Decide"] = {
            "Type": "Choice",
            "Choices": [{"Variable": "$.memo.done", "BooleanEquals": True, "Next": after}],
            "Default": f"{name}Wait",
        }
        states[f"{name}Wait"] = {"Type": "Wait", "SecondsPath": "$.memo.wait", "Next": f"{name}Poll"}
        states[f"{name}Poll"] = _task(step, "poll", f"{name}Decide")
    states[RELEASE] = _release("$.memo", "Done")
    states[RELEASE_FAILED] = _release("$.released", "Failed")
    states["Done"] = {"Type": "Succeed"}
    states["Failed"] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    return {
        "Comment": "CareConnect WebSocket rollout: " + " -> ".join(steps) + " (each step run by the runner function)",
        "StartAt": title(steps[0]),
        "States": states,
    }


def substituted(machine: dict[str, Any], values: dict[str, str]) -> str:
    """The definition as a string with its ${...} substitutions filled, as CloudFormation does."""
    text = json.dumps(machine)
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    return text
