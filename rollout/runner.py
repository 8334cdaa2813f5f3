"""The rollout runner: the Lambda function each Task of the rollout state machine invokes. It runs
one phase (start or poll) of one step of the plan, with the very code the local executor runs,
and returns the memo the next state needs: the stacks' outputs, the step's own work, the results
so far, whether the step is done and how long to wait. Never a function's environment, never a
secret: the memo is the execution's state data, kept in its history for 90 days.

The plan comes from the execution's input, which whoever may start an execution writes: the
runner refuses a plan with a template URL outside the rollout stack's own bucket (its
ROLLOUT_ARTIFACTS_BUCKET, `templates/`), so starting an execution cannot make the CloudFormation
role deploy a template from anywhere else.

A step that fails raises an error named after it (StageFailed, AlarmFired, Declined) whose message
is JSON {"message", "details"}: the state machine catches it (States.TaskFailed) and fails with it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rollout.aws import Aws
from rollout.plan import Plan
from rollout.report import Reporter
from rollout.stacks import Declined, StageFailed
from rollout.steps import DeployStack

BUCKET_VARIABLE = "ROLLOUT_ARTIFACTS_BUCKET"


class TemplateRefused(StageFailed):
    """A plan whose template URL is not in the rollout stack's bucket."""


def foreign_templates(plan: Plan, bucket: str) -> list[str]:
    """The plan's stack steps whose template is not under the bucket's templates/ (as a virtual-
    hosted URL of the plan's region), or whose URL could point elsewhere (.., a query)."""
    hosts = {f"{bucket}.s3.{plan.region}.amazonaws.com", f"{bucket}.s3.{plan.region}.amazonaws.com.cn"}
    refused = []
    for step in plan.steps:
        if not isinstance(step, DeployStack):
            continue
        url = urlsplit(step.template_url)
        inside = url.scheme == "https" and url.hostname in hosts and url.path.startswith("/templates/")
        if not inside or ".." in url.path or url.query or url.fragment or url.port or url.username:
            refused.append(f"{step.name}: {step.template_url}")
    return refused


@dataclass
class RunnerContext:
    """Inside AWS: the runner role's clients; the execution was approved before it started."""

    aws: Aws
    report: Reporter = field(default_factory=lambda: Reporter(sys.stdout))

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    @property
    def calls(self) -> list[str]:
        return self.aws.counter.log

    def confirm(self, question: str) -> bool:
        self.report.line("runner", f"{question} yes (approved before the execution started)")
        return True


def first_memo(outputs: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {"outputs": outputs, "work": {}, "results": [], "done": False, "wait": 0}


def run_phase(plan: Plan, step_name: str, phase: str, memo: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """One phase of one step; a step this plan leaves out is done at once."""
    step, outputs = plan.step(step_name), {k: dict(v) for k, v in memo["outputs"].items()}
    if step is None:
        return {**memo, "work": {}, "done": True, "wait": 0}
    log, first = ctx.calls, len(ctx.calls)
    work = dict(memo["work"]) if phase == "poll" else {}
    # The step's calls so far, counted (a list would grow with every poll past the 256 KB state limit).
    calls: Counter[str] = Counter(work.pop("calls", {}))
    progress = step.start(ctx, outputs) if phase == "start" else step.poll(ctx, outputs, work)
    calls.update(log[first:])
    if progress.done:
        assert progress.result is not None
        return {
            "outputs": outputs,
            "work": {},
            "results": [*memo["results"], {**progress.result, "calls": dict(calls)}],
            "done": True,
            "wait": 0,
        }
    return {
        "outputs": outputs,
        "work": {**progress.work, "calls": dict(calls)},
        "results": memo["results"],
        "done": False,
        "wait": math.ceil(progress.wait),
    }


@functools.cache
def _clients(region: str) -> Aws:
    """One set of clients per warm container, as Lambda advises: creating them costs more than a phase."""
    return Aws(region)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    plan = Plan.from_dict(event["plan"])
    try:
        bucket = os.environ.get(BUCKET_VARIABLE, "")
        refused = foreign_templates(plan, bucket)
        if not bucket or refused:
            raise TemplateRefused(
                f"the plan's templates must come from the rollout stack's bucket {bucket or '(not set)'}: refused",
                refused or [f"{BUCKET_VARIABLE} is not set: deploy the rollout stack again"],
            )
        return run_phase(plan, event["step"], event["phase"], event["memo"], RunnerContext(_clients(plan.region)))
    except (StageFailed, Declined) as error:
        details = getattr(error, "details", [])
        raise type(error)(json.dumps({"message": str(error), "details": details})) from None
