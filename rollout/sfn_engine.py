"""The Step Functions engine: the same plan, executed by the state machine of the `rollout`
template inside AWS. This module builds the execution input (the same parameters the local
engine passes), starts the execution and streams its history until it ends."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from generator.build import build_all
from generator.stages import ARTIFACT_PARAMETERS, STACK_INPUTS, STACK_TEMPLATES
from generator.statemachine import MAX_POLLS, POLL_SECONDS
from rollout import artifacts, bake, engine
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import Plan
from rollout.prepare import Prepared, prepare
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings, SettingsError
from rollout.stacks import Declined, StackDeployer, StageFailed
from rollout.summary import ArtifactSummary, StageResult, Summary

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class NoEchoRefused(SettingsError):
    """A NoEcho parameter would be written into the execution history."""


def execution_input(
    plan: Plan,
    stored: dict[str, artifacts.StoredTemplate],
    artifact_key: str,
    outputs_now: dict[str, dict[str, str]],
    poll_seconds: int = POLL_SECONDS,
    consumers: tuple[str, ...] = (),
    bake_seconds: int = 0,
) -> dict[str, Any]:
    """The endpoint consumers' function ARNs, and every template parameter's value per stage: settings, else the template default; the
    code location; and inputs from stacks that already exist (later stages' outputs, which the
    state machine cannot read before they run). Forward wiring is the state machine's job."""
    templates = build_all(list(STACK_TEMPLATES.values()))
    stacks: dict[str, Any] = {}
    earlier: set[str] = set()
    for stage in plan.stacks:
        declared = templates[stage.template].parameters
        values = {name: str(p.properties.get("Default", "")) for name, p in declared.items()}
        values |= stage.parameters
        if stage.stage in ARTIFACT_PARAMETERS:
            values |= dict(
                zip(
                    ARTIFACT_PARAMETERS[stage.stage],
                    (plan.artifacts_bucket, artifact_key),
                    strict=True,
                )
            )
        for param, (source, key) in STACK_INPUTS[stage.stage].items():
            if source not in earlier:
                values[param] = outputs_now.get(source, {}).get(key, "")
        secret = sorted(n for n, p in declared.items() if p.properties.get("NoEcho") and values.get(n))
        if secret:
            raise NoEchoRefused(
                f"{', '.join(secret)} would appear in the execution history: use DatabaseAuth secret or iam "
                "with the stepfunctions engine"
            )
        stacks[stage.stage] = {
            "name": stage.stack_name,
            "templateUrl": stored[stage.template].url,
            "parameters": values,
        }
        earlier.add(stage.stage)
    # A long bake looks less often, so it stays within MAX_POLLS looks (the execution history holds 25,000 events).
    wait = max(poll_seconds, 1, math.ceil(bake_seconds / MAX_POLLS))
    baking = {"checks": bake.checks(bake_seconds, wait), "waitSeconds": wait,
              "alarmPrefix": bake.alarm_prefix(plan.name_prefix)}  # fmt: skip
    return {"changeSetName": change_set_name(stacks), "pollSeconds": poll_seconds, "stacks": stacks,
            "consumers": list(consumers), "bake": baking}  # fmt: skip


def change_set_name(stacks: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(stacks, sort_keys=True).encode()).hexdigest()
    return f"rollout-{digest[:16]}-{int(time.time())}"


def execution_name(environment: str, artifact_sha: str) -> str:
    return f"{environment}-{artifact_sha[:16]}-{int(time.time())}"[:80]


def follow(
    stepfunctions: Any,
    execution_arn: str,
    report: Reporter,
    *,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Stream state entries from the execution history until the execution ends. The status is
    read before the history, so the history read last holds the final events."""
    seen = 0
    while True:
        described = stepfunctions.describe_execution(executionArn=execution_arn)
        events = _history(stepfunctions, execution_arn)
        for event in events[seen:]:
            entered = event.get("stateEnteredEventDetails")
            if entered:
                report.line("sfn", f"  {entered['name']}")
            failed = event.get("executionFailedEventDetails")
            if failed:
                report.line("sfn", f"FAILED {failed.get('error', '')}: {failed.get('cause', '')}")
        seen = len(events)
        if described["status"] in TERMINAL:
            return {
                "status": described["status"],
                "events": events,
                "output": json.loads(described.get("output") or "{}"),
            }
        sleep(poll_seconds)


def _history(stepfunctions: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = stepfunctions.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def rollout_stack_name(plan: Plan) -> str:
    """One rollout stack per environment, named after its compute stack (cc-websocket-rollout)."""
    return plan.stack("compute").stack_name.removesuffix("-compute") + "-rollout"


def run(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    """The same preparation as the local engine; then deploy or refresh the rollout stack, ship
    code and templates to its bucket, start an execution and follow it. A dry run shows the
    rollout stack's change set and every stage's, as the local engine plans them."""
    prepared = prepare(settings, aws, report, options, "stepfunctions")
    plan = prepared.plan
    deployer = StackDeployer(
        aws.client("cloudformation"),
        report,
        confirm=options.confirm,
        dry_run=options.dry_run,
        poll_seconds=options.poll_seconds,
        sleep=options.sleep,
    )
    compute = plan.stack("compute").parameters
    # The rollout stack's own template comes from the environment's bucket (prepare uploaded it):
    # its first deploy has no bucket of its own yet.
    rollout = deployer.deploy(
        "rollout",
        rollout_stack_name(plan),
        prepared.templates["rollout"],
        {
            "NamePrefix": compute.get("NamePrefix", "cc"),
            "ComputeStackName": plan.stack("compute").stack_name,
            "WebSocketStackName": plan.stack("websocket").stack_name,
            "EnvironmentKmsKeyArn": compute.get("EnvironmentKmsKeyArn", ""),
            "EndpointConsumerArns": ",".join(c.function_arn for c in prepared.consumers),
            "EndpointConsumerRoleArns": ",".join(sorted({c.role_arn for c in prepared.consumers})),
        },
    )
    stepfunctions = aws.client("stepfunctions")
    machine = rollout.outputs.get("StateMachineArn", "")
    running = machine and stepfunctions.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
    if running and not options.dry_run:
        arn = running[0]["executionArn"]
        if not options.confirm(f"execution {arn} is already running: follow it instead of starting another?"):
            raise Declined("another execution is running and a second one would race it: wait for it to end, or "
                           "follow it with `python -m rollout watch`")  # fmt: skip
        return finish(follow(stepfunctions, arn, report, poll_seconds=options.poll_seconds, sleep=options.sleep),
                      arn, prepared, rollout.stack_name)  # fmt: skip
    # What the execution will change, stage by stage, shown (and asked about once) before it starts.
    planned = engine.execute(prepared, aws, report, dataclasses.replace(options, dry_run=True))
    planned.engine = "stepfunctions"
    planned.stages.insert(0, StageResult("rollout", rollout.action, rollout.stack_name, rollout.stack_name,
                                         rollout.changes))  # fmt: skip
    if options.dry_run:
        return planned
    if not options.confirm("Start the execution that applies these changes?"):
        raise Declined("execution not started")
    if prepared.approved_recreates:
        report.line("sfn", f"the state machine deletes and re-creates {', '.join(sorted(prepared.approved_recreates))}")
    bucket = rollout.outputs["ArtifactsBucketName"]
    artifact, s3 = prepared.artifact, aws.client("s3")
    artifacts.upload_if_absent(s3, bucket, artifact.s3_key, artifact.path.read_bytes())
    stored = artifacts.upload_templates(
        s3, bucket, plan.region, {stem: t.text for stem, t in prepared.templates.items()}
    )
    shipped = dataclasses.replace(plan, artifacts_bucket=bucket)
    consumers = tuple(c.function_arn for c in prepared.consumers)
    seconds = plan.bake_seconds if options.bake_seconds is None else options.bake_seconds
    document = execution_input(shipped, stored, artifact.s3_key, prepared.outputs, int(max(options.poll_seconds, 0)),
                               consumers, seconds)  # fmt: skip
    started = stepfunctions.start_execution(stateMachineArn=machine, name=execution_name(plan.environment, artifact.sha256),
                                            input=json.dumps(document))  # fmt: skip
    report.line("sfn", f"execution {started['executionArn']}")
    result = follow(
        stepfunctions, started["executionArn"], report, poll_seconds=options.poll_seconds, sleep=options.sleep
    )
    return finish(result, started["executionArn"], prepared, rollout.stack_name, rollout.action)


def _baked(output: dict[str, Any]) -> list[StageResult]:
    checks = int(output.get("bake", {}).get("checks", 0))
    looks = int(output.get("polls", {}).get("Bake", {}).get("n", 0))
    if not checks:
        return []
    return [
        StageResult("bake", "succeeded", f"{looks + 1} look(s), no alarm in ALARM ({output['bake']['alarmPrefix']}*)")
    ]


def finish(result: dict[str, Any], execution: str, prepared: Prepared | None, rollout_stack: str,
           rollout_action: str = "unchanged") -> Summary:  # fmt: skip
    """The summary of a followed execution; a failed one raises with its Fail state's error and cause."""
    transitions = sum(1 for e in result["events"] if e["type"].endswith("StateEntered"))
    calls = Counter(
        e["taskScheduledEventDetails"]["resource"] for e in result["events"] if "taskScheduledEventDetails" in e
    )
    if result["status"] != "SUCCEEDED":
        failed: dict[str, str] = next(
            (e["executionFailedEventDetails"] for e in result["events"] if "executionFailedEventDetails" in e), {}
        )
        raise StageFailed(
            f"execution {result['status']}: {failed.get('error', '')}",
            [failed.get("cause", "see the execution history")],
        )
    output = result["output"]
    websocket_outputs = {o["OutputKey"]: o["OutputValue"] for o in output["outputs"]["websocket"]["list"]}
    plan = prepared.plan if prepared else None
    artifact = prepared.artifact if prepared else None
    return Summary(
        plan.environment if plan else "", plan.region if plan else "", engine="stepfunctions",
        account=prepared.account if prepared else "", result="succeeded",
        stages=[StageResult("rollout", rollout_action, rollout_stack, rollout_stack),
                StageResult("execution", "succeeded", f"{transitions} state transitions"),
                *_baked(output)],
        artifact=ArtifactSummary(artifact.s3_key, artifact.sha256, prepared.uploaded) if artifact and prepared else None,
        management_endpoint=output["endpoint"]["value"],
        websocket_url=websocket_outputs.get("WebSocketStageInvokeUrl", ""),
        execution=execution, state_transitions=transitions, state_machine_calls=dict(calls),
    )  # fmt: skip
