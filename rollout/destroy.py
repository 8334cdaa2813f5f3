"""`python -m rollout destroy --env NAME [--yes] [--dry-run] [--with-rollout-stack]`: tear an
environment down in the reverse order of the rollout (websocket stack, then compute; the rollout
stack only when asked), after saying what goes and what stays:

- what stays: every resource whose DeletionPolicy is Retain (the account's API Gateway logging
  role, created by the compute stack: other APIs of the region log through it; retained log
  groups), the artifacts bucket (releases, locks), and the rollout stack unless named;
- each stack's termination protection is turned off just before its own deletion;
- the environment's lock is held (rollout/lock.py) and a running execution refuses it;
- the stacks are read back as gone; a second destroy finds nothing to delete and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from generator.stages import STACK_TEMPLATES
from rollout import artifacts, live, lock, settings
from rollout.aws import Aws
from rollout.errors import explain
from rollout.prepare import new_run_id, refuse_while_running, rollout_stack_name
from rollout.report import Reporter
from rollout.stacks import Declined, StackState, StageFailed, describe

DELETE_WAIT_LOOKS = 1800  # a deletion not done after this many looks (poll seconds apart, at least 1 s) failed
CALLS = ("DeleteStack", "UpdateTerminationProtection", "GetTemplate", "ListStackResources", "DescribeStacks")


@dataclass
class Doomed:
    """One stack to delete, with what its deletion keeps."""

    stage: str
    name: str
    state: StackState
    resources: int = 0
    kept: list[str] = field(default_factory=list)  # "Logical (Type, physical id)" of each retained resource


def order(settings_: settings.EnvironmentSettings, with_rollout: bool) -> list[tuple[str, str]]:
    """(stage, stack name), the reverse of the rollout's order."""
    stages = [(stage, settings_.stacks[stage]) for stage in reversed(list(STACK_TEMPLATES))]
    return stages + ([("rollout", rollout_stack_name(settings_))] if with_rollout else [])


def survey(cf: Any, stage: str, name: str, state: StackState) -> Doomed:
    """The stack's resources and which of them its deletion keeps (DeletionPolicy Retain)."""
    template = artifacts.load_template(live.template_text(cf, name)) or {}
    declared = template.get("Resources") or {}
    pages = cf.get_paginator("list_stack_resources").paginate(StackName=name)
    summaries = [r for page in pages for r in page["StackResourceSummaries"]]
    kept = [
        f"{r['LogicalResourceId']} ({r['ResourceType']}, {r.get('PhysicalResourceId', '')})"
        for r in summaries
        if (declared.get(r["LogicalResourceId"]) or {}).get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
    ]
    return Doomed(stage, name, state, len(summaries), kept)


def destroy(
    settings_: settings.EnvironmentSettings,
    aws: Aws,
    report: Reporter,
    confirm: Callable[[str], bool],
    *,
    dry_run: bool = False,
    with_rollout: bool = False,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Delete the environment's stacks; the names of those deleted (read back as gone)."""
    cf = aws.client("cloudformation")
    found = [(stage, name, describe(cf, name)) for stage, name in order(settings_, with_rollout)]
    doomed = [survey(cf, stage, name, state) for stage, name, state in found if state is not None]
    rollout_state = describe(cf, rollout_stack_name(settings_))
    if not doomed:
        report.line(
            "destroy", f"nothing to delete: no stack of {settings_.name} exists ({', '.join(n for _, n, _ in found)})"
        )
        return []
    for stack in doomed:
        protected = " (termination protection: turned off first)" if stack.state.protected else ""
        report.line("destroy", f"deletes {stack.name}: {stack.resources} resource(s), {stack.state.status}{protected}")
        for kept in stack.kept:
            report.line("destroy", f"  keeps {kept}: DeletionPolicy Retain")
    report.line("destroy", f"keeps the artifacts bucket s3://{settings_.artifacts_bucket} (releases, templates, locks)")
    if rollout_state is not None and not with_rollout:
        report.line(
            "destroy", f"keeps the rollout stack {rollout_stack_name(settings_)} (--with-rollout-stack deletes it)"
        )
    report.line(
        "destroy",
        "keeps the account's API Gateway CloudWatch role setting: it names the retained logging role, "
        "which other APIs of the region may log through",
    )
    if dry_run:
        report.line("destroy", "DRY RUN: nothing deleted")
        return []
    refuse_while_running(aws, rollout_state)
    names = ", ".join(s.name for s in doomed)
    if not confirm(f"Delete {len(doomed)} stack(s) of {settings_.name} ({names}) and every resource they do not keep?"):
        raise Declined(f"{settings_.name}: nothing deleted")
    run_id, caller = new_run_id(), aws.identity()["arn"]
    with lock.Holding(aws, settings_.artifacts_bucket, lock.new(settings_.name, caller, run_id, "destroy"), report):
        for stack in doomed:
            _delete(cf, stack, report, poll_seconds, sleep)
    left = [s.name for s in doomed if describe(cf, s.name) is not None]
    if left:
        raise StageFailed(f"still there after deletion: {', '.join(left)}", ["see the stacks' events"])
    report.line("destroy", f"read back: {names} no longer exist(s)")
    return [s.name for s in doomed]


def _delete(cf: Any, stack: Doomed, report: Reporter, poll_seconds: float, sleep: Callable[[float], None]) -> None:
    if describe(cf, stack.name) is None:  # gone meanwhile
        return
    if stack.state.protected:
        cf.update_termination_protection(StackName=stack.name, EnableTerminationProtection=False)
        report.line("destroy", f"{stack.name}: termination protection turned off")
    cf.delete_stack(StackName=stack.name)
    report.line("destroy", f"{stack.name}: deleting")
    for _ in range(DELETE_WAIT_LOOKS):
        state = describe(cf, stack.state.stack_id)
        if state is None or state.status == "DELETE_COMPLETE":
            report.line("destroy", f"{stack.name}: deleted")
            return
        if state.status == "DELETE_FAILED":
            raise StageFailed(f"{stack.name}: DELETE_FAILED: {state.reason or 'no reason given'}", ["see its events"])
        sleep(max(poll_seconds, 1.0))
    raise StageFailed(f"{stack.name}: still being deleted after {DELETE_WAIT_LOOKS} looks", ["see its events"])


def add_command(commands: Any, aws_target: Callable[[Any], None], confirm: Any, failed: Any) -> None:
    """The `destroy` subcommand (its own module: cli.py only registers it)."""
    sub = commands.add_parser("destroy", help="delete an environment's stacks, reverse order (asks first)")
    aws_target(sub)
    sub.add_argument("--yes", action="store_true", help="delete without asking (the question is still printed)")
    sub.add_argument("--dry-run", action="store_true", help="say what would be deleted and kept; delete nothing")
    sub.add_argument("--with-rollout-stack", action="store_true", help="delete the rollout stack too, last")
    sub.add_argument("--poll-seconds", type=float, default=2.0, help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        try:
            env = settings.load(args.env, region=args.region, project=args.project)
            if not (args.yes or args.dry_run or sys.stdin.isatty()):
                raise settings.SettingsError("not an interactive terminal: pass --yes (or --dry-run)")
            aws = args.factory.aws(env.region, profile=args.profile, endpoint_url=args.endpoint_url)
            deleted = destroy(
                env,
                aws,
                Reporter(),
                confirm(args.yes),
                dry_run=args.dry_run,
                with_rollout=args.with_rollout_stack,
                poll_seconds=args.poll_seconds,
            )
        except Exception as error:
            failure = explain(error)
            if failure is None:
                raise
            return int(failed(failure, False, Reporter()))
        print(f"deleted {', '.join(deleted)}" if deleted else f"{args.env}: nothing deleted")
        return 0

    sub.set_defaults(run=run)
