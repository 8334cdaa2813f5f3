"""Release history: every deploy that held the environment (both engines; never a dry run) leaves
a record in the environment's artifacts bucket, `releases/<environment>/<release id>.json`, written
when the run ends, however it ends. The release id is the run id (`<epoch milliseconds>-<random>`, the
change sets' and the lock's too), so keys sort oldest first.

A record holds what `rollback` needs to run the release again through the same plan: the handlers
zip (bucket, key, hashes), each stack's template (content-addressed `templates/<stem>-<hash>.yaml`,
kept in the environment's bucket), and every stack parameter as the plan gave it (NoEcho values as
`****`, never the value). Beside it: the git commit of the project folder and whether its tree was
dirty, the caller's ARN, the engine, start and end, and the result read back from AWS: each
stack's status after the run, and what the stack stages did as the stacks' status says.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from generator.stages import STACK_TEMPLATES
from rollout import artifacts
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import Plan
from rollout.report import Reporter
from rollout.stacks import Declined, StackState, describe
from rollout.steps import DeployStack, value_of

if TYPE_CHECKING:  # prepare reads the history (a rollback's, under the lock): no import cycle
    from rollout.prepare import Prepared
from rollout.summary import Summary

MASK = "****"  # what a NoEcho parameter's value is recorded as (CloudFormation shows the same)


def prefix(environment: str) -> str:
    return f"releases/{environment}/"


def key(environment: str, release_id: str) -> str:
    return f"{prefix(environment)}{release_id}.json"


def git_state(folder: Path) -> dict[str, Any] | None:
    """The commit checked out in `folder` and whether the folder's tree differs from it (untracked
    files count: a new handler module is deployed); None when it is not a git checkout."""

    def git(*arguments: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                ["git", "-C", str(folder), *arguments], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None

    head = git("rev-parse", "--verify", "HEAD")
    if head is None or head.returncode != 0:
        return None
    status = git("status", "--porcelain", "--", ".")
    return {"commit": head.stdout.strip(), "dirty": status is None or status.returncode != 0 or bool(status.stdout)}


def stage_action(before: StackState | None, after: StackState | None) -> str:
    """What a stack stage did, as the stack's status says (read after the run, against before it)."""
    if after is None:
        return "absent"
    if before is None or before.stack_id != after.stack_id:  # made by this run (a later update included)
        return {
            "CREATE_COMPLETE": "created",
            "UPDATE_COMPLETE": "created",
            "ROLLBACK_COMPLETE": "create rolled back",
        }.get(after.status, after.status.lower())
    same = (before.last_update, before.status, before.parameters) == (after.last_update, after.status, after.parameters)
    if same:  # LastUpdatedTime to the second: the status and parameters tell an update in the same second
        return "unchanged"
    return {
        "CREATE_COMPLETE": "created",
        "UPDATE_COMPLETE": "updated",
        "UPDATE_ROLLBACK_COMPLETE": "rolled back",
        "ROLLBACK_COMPLETE": "create rolled back",
    }.get(after.status, after.status.lower())


def masked(parameters: dict[str, Any], no_echo: tuple[str, ...], outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    """The parameters as the stack receives them (references to earlier steps' outputs filled in
    from what the stacks hold now), NoEcho values masked."""
    found = {}
    for name, value in sorted(parameters.items()):
        resolved = value_of(value, outputs)
        if name in no_echo and resolved:
            found[name] = MASK
        elif resolved is None:  # the output was never produced (the run failed before it)
            found[name] = f"<{value['from']}.{value['output']}>"
        else:
            found[name] = resolved
    return found


def recorded_parameters(step: DeployStack, outputs: dict[str, dict[str, str]]) -> dict[str, str]:
    """As `masked`, with the digest the step computes once its inputs are filled (as the stack holds it)."""
    found = masked(step.parameters, step.no_echo, outputs)
    if step.digest_parameter:
        found[step.digest_parameter] = step.resolved(outputs).get(step.digest_parameter, "")
    return found


def stack_steps(plan: Plan) -> dict[str, DeployStack]:
    """Each stage's last stack step (`carry` brings the compute stack to its final parameters)."""
    found: dict[str, DeployStack] = {}
    for step in plan.steps:
        if isinstance(step, DeployStack):
            stage = "compute" if step.name == "carry" else step.name
            if stage in STACK_TEMPLATES:
                found[stage] = step
    return found


def status(state: StackState | None) -> str:
    return state.status if state is not None else "ABSENT"


def record(
    prepared: Prepared,
    plan: Plan | None,
    engine: str,
    started: datetime,
    ended: datetime,
    after: dict[str, StackState | None],
    summary: Summary | None,
    error: BaseException | None,
    rollback: dict[str, str] | None,
) -> dict[str, Any]:
    """The release as JSON data (no NoEcho value in it)."""
    settings, artifact = prepared.settings, prepared.artifact
    outputs = {stage: dict(state.outputs) if state else {} for stage, state in after.items()}
    steps = stack_steps(plan) if plan else {}
    if summary is not None:
        result = summary.result
    elif isinstance(error, Declined):
        result = "declined"
    elif isinstance(error, KeyboardInterrupt):
        result = "interrupted"
    else:
        result = "failed"
    data: dict[str, Any] = {
        "id": prepared.run_id,
        "environment": settings.name,
        "region": settings.region,
        "account": prepared.observed.account,
        "engine": engine,
        "caller": prepared.caller,
        "started": started.isoformat(timespec="seconds"),
        "ended": ended.isoformat(timespec="seconds"),
        "result": result,
        "artifact": {
            "bucket": plan.artifacts_bucket if plan else settings.artifacts_bucket,
            "key": artifact.s3_key,
            "sha256": artifact.sha256,
            "code_sha256": plan_code_sha256(plan),
        },
        "templates": {
            stage: {
                "key": artifacts.template_key(STACK_TEMPLATES[stage], prepared.texts[STACK_TEMPLATES[stage]]),
                "sha256": step.template_sha256,
            }
            for stage, step in steps.items()
        },
        "stacks": {
            stage: {
                "stack": settings.stacks[stage],
                "status": status(after.get(stage)),
                "action": stage_action(prepared.observed.stacks.get(stage), after.get(stage)),
                "parameters": recorded_parameters(step, outputs),
            }
            for stage, step in steps.items()
        },
        "stages": [{"stage": s.stage, "action": s.action, "detail": s.detail} for s in summary.stages]
        if summary
        else [],
    }
    if error is not None and summary is None:
        data["error"] = str(error) or type(error).__name__
    if rollback:
        data["rollback"] = rollback
    return data


def plan_code_sha256(plan: Plan | None) -> str:
    """Lambda's CodeSha256 of the zip (the step that deploys the code checks every function runs it)."""
    steps = plan.steps if plan else ()
    return next((s.code_sha256 for s in steps if isinstance(s, DeployStack) and s.code_sha256), "")


def write(s3: Any, bucket: str, data: dict[str, Any]) -> str:
    """Put the record (the bucket's default encryption applies); its key."""
    where = key(data["environment"], data["id"])
    s3.put_object(
        Bucket=bucket,
        Key=where,
        Body=json.dumps(data, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return where


def listed(s3: Any, bucket: str, environment: str) -> list[str]:
    """The release ids of the environment, oldest first (ids start with the epoch millisecond; the
    epoch second in records from before, which therefore sort first)."""
    ids: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix(environment)):
        for found in page.get("Contents", []):
            name = found["Key"][len(prefix(environment)) :]
            if name.endswith(".json") and "/" not in name:
                ids.append(name.removesuffix(".json"))
    return sorted(ids, key=sort_key)


def sort_key(release_id: str) -> tuple[int, str]:
    head = release_id.split("-", 1)[0]
    return (int(head) if head.isdigit() else 0, release_id)


def read(s3: Any, bucket: str, environment: str, release_id: str) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=key(environment, release_id))["Body"].read()))


def history(s3: Any, bucket: str, environment: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The environment's releases, newest first (the newest `limit` only: each is one read)."""
    ids = listed(s3, bucket, environment)[::-1]
    return [read(s3, bucket, environment, i) for i in (ids[:limit] if limit else ids)]


def describe_line(release: dict[str, Any]) -> str:
    """One line of `rollout history`: id, when, who, commit, result."""
    git = release.get("git")
    commit = f"{git['commit'][:12]}{' (dirty)' if git['dirty'] else ''}" if git else "no git"
    rollback = release.get("rollback")
    marked = f"  rollback of {rollback['of']} to {rollback['to']}" if rollback else ""
    return (
        f"{release['id']}  {release['started']}  {release['result']:<11s} {release['engine']:<13s} "
        f"{commit:<20s} {release['caller']}{marked}"
    )


@dataclass
class Recording:
    """One run's release, as a context around everything the run does while it holds the lock: the
    engine hands over its plan (`planned`) and its summary (`done`); on exit the record is written,
    whatever the outcome. A dry run records nothing."""

    aws: Aws
    prepared: Prepared
    options: Options
    report: Reporter
    engine: str
    plan: Plan | None = None
    summary: Summary | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def planned(self, plan: Plan) -> Plan:
        self.plan = plan
        return plan

    def done(self, summary: Summary) -> Summary:
        self.summary = summary
        return summary

    def __enter__(self) -> Recording:
        self.started = datetime.now(UTC)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.options.dry_run:
            return
        try:
            self._write(error)
        except (ClientError, OSError) as failed:  # the run's own outcome stands; say the record is missing
            self.report.line("release", f"WARNING the release record was not written: {failed}")

    def _write(self, error: BaseException | None) -> None:
        settings = self.prepared.settings
        cf, s3 = self.aws.client("cloudformation"), self.aws.client("s3")
        after = {stage: describe(cf, settings.stacks[stage]) for stage in STACK_TEMPLATES}
        data = record(
            self.prepared,
            self.plan,
            self.engine,
            self.started,
            datetime.now(UTC),
            after,
            self.summary,
            error,
            self.options.rollback,
        )
        git = git_state(self.options.project.root)
        if git is not None:
            data["git"] = git
        if self.plan is not None and self.plan.artifacts_bucket != settings.artifacts_bucket:
            # The templates stay retrievable beside the records, whatever becomes of the plan's bucket.
            stems = {STACK_TEMPLATES[stage] for stage in data["templates"]}
            artifacts.upload_templates(
                s3, settings.artifacts_bucket, settings.region, {s: self.prepared.texts[s] for s in stems}
            )
        where = write(s3, settings.artifacts_bucket, data)
        self.report.line(
            "release", f"{data['id']} recorded ({data['result']}): s3://{settings.artifacts_bucket}/{where}"
        )
