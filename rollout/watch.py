"""`python -m rollout watch --env NAME`: re-attach to what is running for an environment: the
rollout state machine's execution (Step Functions engine), else any of its stacks being
changed, and follow it to the end as the rollout would have. Read-only."""

from __future__ import annotations

from rollout.aws import Aws
from rollout.options import Options
from rollout.prepare import plan_for
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.sfn_engine import finish, follow, rollout_stack_name
from rollout.stacks import StackDeployer, describe
from rollout.summary import StageResult, Summary


def watch(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    plan = plan_for(settings)
    cloudformation = aws.client("cloudformation")
    rollout = describe(cloudformation, rollout_stack_name(plan))
    machine = rollout.outputs.get("StateMachineArn") if rollout else None
    if machine:
        stepfunctions = aws.client("stepfunctions")
        running = stepfunctions.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
        if running:
            arn = running[0]["executionArn"]
            report.line("watch", f"following execution {arn}")
            result = follow(stepfunctions, arn, report, poll_seconds=options.poll_seconds, sleep=options.sleep)
            summary = finish(result, arn, None, rollout_stack_name(plan))
            summary.environment, summary.region = plan.environment, plan.region
            return summary
    deployer = StackDeployer(cloudformation, report, confirm=options.confirm, poll_seconds=options.poll_seconds,
                             sleep=options.sleep)  # fmt: skip
    watched = []
    for stage in plan.stacks:
        state = describe(cloudformation, stage.stack_name)
        if state is not None and state.status.endswith("_IN_PROGRESS"):
            report.line("watch", f"following {stage.stack_name} ({state.status})")
            final = deployer.follow(stage.stage, stage.stack_name)
            watched.append(StageResult(stage.stage, final.status.lower(), stage.stack_name, stage.stack_name))
    if not watched:
        report.line("watch", f"nothing is running for environment {plan.environment}")
    return Summary(plan.environment, plan.region, result="succeeded", stages=watched)
