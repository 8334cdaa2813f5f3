"""`python -m rollout watch --env NAME`: re-attach to what is running for an environment: the
rollout state machine's execution (Step Functions engine), else any of its stacks being
changed, and follow it to the end as the rollout would have. Read-only."""

from __future__ import annotations

from generator.stages import STACK_TEMPLATES
from rollout.aws import Aws
from rollout.options import Options
from rollout.prepare import rollout_stack_name
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.sfn_engine import finish, follow
from rollout.stacks import describe
from rollout.steps import latest_event_id, new_events
from rollout.summary import StageResult, Summary


def watch(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    cloudformation = aws.client("cloudformation")
    rollout = describe(cloudformation, rollout_stack_name(settings))
    machine = rollout.outputs.get("StateMachineArn") if rollout else None
    if machine:
        stepfunctions = aws.client("stepfunctions")
        running = stepfunctions.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
        if running:
            arn = running[0]["executionArn"]
            report.line("watch", f"following execution {arn}")
            memo = finish(follow(stepfunctions, arn, report, poll_seconds=options.poll_seconds, sleep=options.sleep))
            stages = [StageResult(**result) for result in memo.get("results", [])]
            return Summary(
                settings.name, settings.region, engine="stepfunctions", result="succeeded", stages=stages, execution=arn
            )
    watched = []
    for stage in STACK_TEMPLATES:
        name = settings.stacks[stage]
        state = describe(cloudformation, name)
        if state is None or not state.status.endswith("_IN_PROGRESS"):
            continue
        report.line("watch", f"following {name} ({state.status})")
        last = latest_event_id(cloudformation, name)
        while state is not None and state.status.endswith("_IN_PROGRESS"):
            options.sleep(options.poll_seconds)
            for event in new_events(cloudformation, state.stack_id, last):
                last = event["EventId"]
                report.event(stage, event)
            state = describe(cloudformation, state.stack_id)
        watched.append(StageResult(stage, state.status.lower() if state else "delete_complete", name, name))
    if not watched:
        report.line("watch", f"nothing is running for environment {settings.name}")
        return Summary(settings.name, settings.region, result="nothing running")
    return Summary(settings.name, settings.region, result="succeeded", stages=watched)
