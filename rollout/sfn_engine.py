"""The Step Functions orchestrator: the same plan, run inside AWS by the rollout state machine,
whose every Task invokes the runner function with the same step code (rollout/runner.py).

  prepare (as the local engine) -> the rollout stack (bucket, service role, runner, state machine)
  deployed as one step from here -> the plan resolved for it (its role, its bucket) -> code and
  templates uploaded -> every stack's change set shown, one question -> the execution started with
  the plan as its input -> its history followed -> the summary, read back from AWS.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rollout import artifacts, package, protection
from rollout.aws import Aws
from rollout.bake import AlarmFired
from rollout.engine import LocalContext, current_outputs, execute, preview, summarize
from rollout.lock import Holding
from rollout.options import Options
from rollout.plan import Plan
from rollout.prepare import Prepared, prepare, rollout_stack_name, upload
from rollout.releases import Recording
from rollout.report import Reporter
from rollout.runner import first_memo
from rollout.settings import EnvironmentSettings, SettingsError
from rollout.stacks import Declined, StageFailed, describe
from rollout.steps import DeployStack, template_sha256
from rollout.summary import StageResult, Summary
from rollout.unlock_step import NAME as UNLOCK_STEP
from rollout.unlock_step import with_release

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class NoEchoRefused(SettingsError):
    """A NoEcho parameter would be written into the execution history."""


def execution_name(environment: str, run_id: str) -> str:
    return f"{environment}-{run_id}"[:80]


def rollout_step(prepared: Prepared, runner_key: str, options: Options) -> DeployStack:
    """The rollout stack, deployed from here with the caller's rights from the environment's bucket
    (it creates the bucket and role the plan then uses)."""
    settings, consumers = prepared.settings, prepared.observed.consumers
    compute = settings.parameters.get("compute", {})
    text = prepared.texts["rollout"]
    url = artifacts.object_url(settings.artifacts_bucket, artifacts.template_key("rollout", text), settings.region)
    parameters = {
        "NamePrefix": compute.get("NamePrefix", "cc"),
        "ComputeStackName": settings.stacks["compute"],
        "WebSocketStackName": settings.stacks["websocket"],
        "EnvironmentKmsKeyArn": compute.get("EnvironmentKmsKeyArn", ""),
        "EndpointConsumerArns": ",".join(c.function_arn for c in consumers),
        "EndpointConsumerRoleArns": ",".join(sorted({c.role_arn for c in consumers})),
        "RunnerCodeBucket": settings.artifacts_bucket,
        "RunnerCodeKey": runner_key,
    }
    return DeployStack(
        "rollout",
        options.poll_seconds,
        rollout_stack_name(settings),
        url,
        template_sha256(text),
        parameters,
        "",
        f"rollout-{prepared.run_id}",
        protect=True,
    )


def refuse_secrets(prepared: Prepared) -> None:
    """The plan is the execution's input, kept in its history: no NoEcho value may be in it."""
    from generator.build import build_all
    from generator.stages import STACK_TEMPLATES

    templates = build_all(list(STACK_TEMPLATES.values()))
    for stage, stem in STACK_TEMPLATES.items():
        given = prepared.settings.parameters.get(stage, {})
        secret = sorted(n for n, p in templates[stem].parameters.items() if p.properties.get("NoEcho") and given.get(n))
        if secret:
            raise NoEchoRefused(
                f"{', '.join(secret)} would appear in the execution history: use DatabaseAuth secret "
                "or iam with the stepfunctions engine"
            )


def run(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    with prepare(settings, aws, report, options, "stepfunctions") as prepared:
        # Refused before anything changes (prepare refuses a running execution): the runner's code
        # is not replaced under one, and no NoEcho value reaches an execution's history.
        refuse_secrets(prepared)
        assert prepared.holding is not None
        with Recording(aws, prepared, options, report, "stepfunctions") as release:
            return release.done(_run(prepared, prepared.holding, aws, report, options, release))


def _run(
    prepared: Prepared, holding: Holding, aws: Aws, report: Reporter, options: Options, release: Recording
) -> Summary:
    settings, ctx = prepared.settings, LocalContext(aws, report, options.confirm)
    stepfunctions = aws.client("stepfunctions")
    runner = package.runner_zip()
    s3 = aws.client("s3")
    artifacts.upload_templates(s3, settings.artifacts_bucket, settings.region, {"rollout": prepared.texts["rollout"]})
    if not options.dry_run:
        artifacts.upload_if_absent(s3, settings.artifacts_bucket, runner.s3_key, runner.body)
    stack = rollout_step(prepared, runner.s3_key, options)
    if options.dry_run:
        rollout_result = stack.preview(ctx, {}, options.sleep)
    else:
        (rollout_result,) = execute(rollout_stack_plan(prepared, stack), ctx, {}, options.sleep)
    observed = replace(prepared.observed, rollout=describe(aws.client("cloudformation"), stack.stack_name))
    plan = release.planned(prepared.plan(options, observed))
    machine = observed.rollout.outputs.get("StateMachineArn", "") if observed.rollout else ""
    uploaded = upload(aws, plan, prepared, report, dry_run=options.dry_run)
    for line in [*plan.notes, *plan.lines()]:
        report.line("plan", line)
    outputs = current_outputs(prepared)
    planned = preview(plan, ctx, outputs, options.sleep)
    if not (options.dry_run or options.allow_replacement):
        protection.refuse_results(planned)  # before the question and the execution
    if options.dry_run:
        results = [rollout_result, *planned]
        summary = summarize(plan, prepared, aws, results, uploaded, "stepfunctions", dry_run=True, report=report)
        return summary
    if not options.confirm("Start the execution that applies these changes?"):
        raise Declined("execution not started")
    started = stepfunctions.start_execution(
        stateMachineArn=machine,
        name=execution_name(settings.name, plan.run_id),
        # The execution releases the lock itself when it ends (rollout/unlock_step.py).
        input=json.dumps(
            {"plan": with_release(plan, settings.artifacts_bucket).to_dict(), "memo": first_memo(outputs)}
        ),
    )
    report.line("sfn", f"execution {started['executionArn']}")
    holding.executing(started["executionArn"])  # the lock names it: stale once it ends, if we stop following
    result = follow(
        stepfunctions, started["executionArn"], report, poll_seconds=options.poll_seconds, sleep=options.sleep
    )
    memo = finish(result)
    released = [r for r in memo["results"] if r["stage"] == UNLOCK_STEP]
    memo["results"] = [r for r in memo["results"] if r["stage"] != UNLOCK_STEP]
    for r in released:
        report.line("sfn", f"lock: {r['action']} by the execution ({r['detail']})")
    summary = summarize(plan, prepared, aws, [rollout_result, *memo["results"]], uploaded, "stepfunctions")
    summary.stages.insert(1, StageResult("execution", "succeeded", f"{transitions(result)} state transitions"))
    summary.execution, summary.state_transitions = started["executionArn"], transitions(result)
    summary.state_machine_calls = dict(
        Counter(
            e["taskScheduledEventDetails"]["resource"] for e in result["events"] if "taskScheduledEventDetails" in e
        )
    )
    return summary


def rollout_stack_plan(prepared: Prepared, step: DeployStack) -> Plan:
    """A one-step plan for the rollout stack itself."""
    observed = prepared.observed
    return Plan(
        prepared.settings.name,
        prepared.settings.region,
        observed.account,
        observed.partition,
        prepared.settings.artifacts_bucket,
        "",
        prepared.run_id,
        (step,),
    )


def transitions(result: dict[str, Any]) -> int:
    return sum(1 for e in result["events"] if e["type"].endswith("StateEntered"))


def finish(result: dict[str, Any]) -> dict[str, Any]:
    """The memo a succeeded execution ended with; a failed one raises the step's own error."""
    if result["status"] == "SUCCEEDED":
        return dict(result["output"]["memo"])
    failed: dict[str, str] = next(
        (e["executionFailedEventDetails"] for e in result["events"] if "executionFailedEventDetails" in e), {}
    )
    message, details = f"execution {result['status']}: {failed.get('error', '')}", [failed.get("cause", "")]
    try:  # a step's error: Lambda's {"errorMessage": <the runner's JSON>, "errorType": ...}
        raised = json.loads(json.loads(failed.get("cause", ""))["errorMessage"])
        message, details = raised["message"], raised["details"]
    except (ValueError, KeyError, TypeError):
        pass
    if failed.get("error") == "Declined":
        raise Declined(message)
    error = AlarmFired if failed.get("error") == "AlarmFired" else StageFailed
    raise error(message, [d for d in details if d] or ["see the execution history"])


def follow(
    stepfunctions: Any,
    execution_arn: str,
    report: Reporter,
    *,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Stream state entries from the execution history until the execution ends. The status is
    read before the history, so the history read last holds the final events. Each look reads
    only the events after the last one seen (newest first, until a seen one), never the whole
    history again."""
    events: list[dict[str, Any]] = []
    while True:
        described = stepfunctions.describe_execution(executionArn=execution_arn)
        fresh = new_history(stepfunctions, execution_arn, events[-1]["id"] if events else 0)
        for event in fresh:
            entered = event.get("stateEnteredEventDetails")
            if entered and not entered["name"].endswith(("Decide", "Wait")):
                report.line("sfn", f"  {entered['name']}")
            failed = event.get("executionFailedEventDetails")
            if failed:
                report.line("sfn", f"FAILED {failed.get('error', '')}")
        events += fresh
        if described["status"] in TERMINAL:
            return {
                "status": described["status"],
                "events": events,
                "output": json.loads(described.get("output") or "{}"),
            }
        sleep(poll_seconds)


HISTORY_PAGE = 20  # events per GetExecutionHistory call: a look sees a few new ones, and one already seen


def new_history(stepfunctions: Any, execution_arn: str, last_seen: int) -> list[dict[str, Any]]:
    """The execution's events after event id `last_seen`, oldest first: pages newest first until
    one reaches an event already seen."""
    fresh: list[dict[str, Any]] = []
    token = None
    while True:
        paging: dict[str, str] = {"nextToken": token} if token else {}
        page = stepfunctions.get_execution_history(
            executionArn=execution_arn, reverseOrder=True, maxResults=HISTORY_PAGE, **paging
        )
        for event in page["events"]:
            if event["id"] <= last_seen:
                return fresh[::-1]
            fresh.append(event)
        token = page.get("nextToken")
        if not token:
            return fresh[::-1]
