"""The local orchestrator: the plan's steps run in this process, one after another.

  prepare (rollout.prepare: checks, what AWS holds, questions, package) -> resolve the plan ->
  upload code and templates -> each step: start, then poll after its wait until done -> summary,
  read back from AWS.
A dry run is the plan printed and each stack's change set shown (`preview`), then discarded.
A step that fails stops the run: later steps do not start. Re-running resumes: finished steps
are recognised as unchanged and cost no mutating call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rollout import protection
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import Plan
from rollout.prepare import Prepared, prepare, upload
from rollout.releases import Recording
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.stacks import describe
from rollout.steps import Context, DeployStack
from rollout.summary import ArtifactSummary, StageResult, Summary

__all__ = ["LocalContext", "Options", "execute", "preview", "run"]


@dataclass
class LocalContext:
    """The steps' context on a laptop: the engineer's clients, their terminal, their answers."""

    aws: Aws
    report: Reporter
    confirm: Callable[[str], bool]

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    @property
    def calls(self) -> list[str]:
        return self.aws.counter.log


def run(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    with aws.repeated_reads():
        return _run(settings, aws, report, options)


def _run(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    with (
        prepare(settings, aws, report, options, "local") as prepared,
        Recording(aws, prepared, options, report, "local") as release,
    ):
        plan = release.planned(prepared.plan(options))
        uploaded = upload(aws, plan, prepared, report, dry_run=options.dry_run)
        ctx = LocalContext(aws, report, options.confirm)
        return release.done(orchestrate(plan, prepared, ctx, options, uploaded, "local"))


def orchestrate(
    plan: Plan, prepared: Prepared, ctx: LocalContext, options: Options, uploaded: bool, engine: str
) -> Summary:
    """Print the plan, then preview it (dry run) or execute it; the summary."""
    for note in plan.notes:
        ctx.report.line("preflight", note)
    for line in plan.lines():
        ctx.report.line("plan", line)
    outputs = current_outputs(prepared)
    if options.dry_run:
        results = preview(plan, ctx, outputs, options.sleep)
    else:
        results = execute(plan, ctx, outputs, options.sleep)
    return summarize(plan, prepared, ctx.aws, results, uploaded, engine, dry_run=options.dry_run, report=ctx.report)


def current_outputs(prepared: Prepared) -> dict[str, dict[str, str]]:
    return {stage: dict(state.outputs) if state else {} for stage, state in prepared.observed.stacks.items()}


def execute(
    plan: Plan, ctx: Context, outputs: dict[str, dict[str, str]], sleep: Callable[[float], None]
) -> list[dict[str, Any]]:
    """Every step: start, then poll after its wait until it is done."""
    results, log = [], ctx.calls
    for step in plan.steps:
        first = len(log)
        progress = step.start(ctx, outputs)
        while not progress.done:
            if progress.wait:
                sleep(progress.wait)
            progress = step.poll(ctx, outputs, progress.work)
        assert progress.result is not None
        results.append({**progress.result, "calls": dict(Counter(log[first:]))})
    return results


def preview(
    plan: Plan, ctx: Context, outputs: dict[str, dict[str, str]], sleep: Callable[[float], None]
) -> list[dict[str, Any]]:
    """The dry run: each stack's change set shown and discarded; the other steps described."""
    return [
        step.preview(ctx, outputs, sleep)
        if isinstance(step, DeployStack)
        else {"stage": step.name, "action": "planned", "detail": step.description()}
        for step in plan.steps
    ]


def summarize(
    plan: Plan,
    prepared: Prepared,
    aws: Aws,
    results: list[dict[str, Any]],
    uploaded: bool,
    engine: str,
    *,
    dry_run: bool = False,
    report: Reporter | None = None,
) -> Summary:
    """What the run did, and the URLs as the websocket stack holds them now (read back)."""
    websocket = describe(aws.client("cloudformation"), prepared.settings.stacks["websocket"])
    held = websocket.outputs if websocket else {}
    artifact = prepared.artifact
    url = held.get("WebSocketStageInvokeUrl", "")
    if dry_run:  # the URL the plan produces, not the live one
        url = protection.dry_run_url(plan, results, url, report)
    return Summary(
        plan.environment,
        plan.region,
        engine=engine,
        account=plan.account,
        dry_run=dry_run,
        result="planned" if dry_run else "succeeded",
        stages=[StageResult(**result) for result in results],
        artifact=ArtifactSummary(artifact.s3_key, artifact.sha256, uploaded and not dry_run),
        management_endpoint=held.get("WebSocketManagementEndpoint", ""),
        websocket_url=url,
        drift=prepared.drift,
    )
