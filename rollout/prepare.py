"""What both engines do before their first change, in one place and one order:

  who and where -> templates_out/ fresh -> the environment's bucket -> its lock -> what AWS holds (the stacks,
  deployable or refused; the account's logging role; the endpoint consumers; the rollout stack)
  -> the release engineer's answers (a ROLLBACK_COMPLETE stack re-created, a NamePrefix change)
  -> the handlers built (reused when unchanged).

The lock is taken before anything the plan depends on is read, and held until the run ends
(`with prepare(...) as prepared:`): what preparation reads and asks cannot be changed meanwhile by
another run. `Prepared.plan` then resolves the plan (`rollout.plan.resolve`) for a bucket and service role, and
`upload` puts the code and templates where that plan says they are.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from generator.names import Names
from generator.stages import STACK_TEMPLATES, UPDATABLE
from rollout import artifacts, live, lock, package, preflight, releases
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import Artifacts, Consumer, Observed, Plan, PlanRefused, check_kept_roles, resolve, service_role
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.stacks import Declined, StackState, describe


@dataclass(frozen=True)
class Prepared:
    settings: EnvironmentSettings
    observed: Observed
    artifact: package.Artifact
    texts: dict[str, str]  # template stem -> text, as generated now
    recreate: frozenset[str]  # ROLLBACK_COMPLETE stacks the engineer agreed to re-create
    run_id: str
    drift: dict[str, list[str]] = field(default_factory=dict)  # stack -> drifted resources, read before
    caller: str = ""  # the caller's ARN (the lock names it)
    holding: lock.Holding | None = None  # the environment's lock, held while the run lasts

    def artifacts(self, bucket: str) -> Artifacts:
        urls = {
            stem: artifacts.object_url(bucket, artifacts.template_key(stem, text), self.settings.region)
            for stem, text in self.texts.items()
        }
        specs = {
            stem: (artifacts.load_template(text) or {}).get("Parameters") or {} for stem, text in self.texts.items()
        }
        return Artifacts(
            bucket,
            self.artifact.s3_key,
            urls,
            self.texts,
            live.code_sha256(self.artifact.path.read_bytes()),
            {
                stem: {n: live.effective(p["Default"]) for n, p in ps.items() if "Default" in p}
                for stem, ps in specs.items()
            },
            {stem: tuple(sorted(n for n, p in ps.items() if p.get("NoEcho"))) for stem, ps in specs.items()},
        )

    def plan(self, options: Options, observed: Observed | None = None) -> Plan:
        """The plan for what AWS holds (`observed`, default: as read in preparation)."""
        observed = observed or self.observed
        role, bucket = service_role(observed)
        check_kept_roles(observed, self.settings.stacks, role)
        seconds = self.settings.bake_seconds if options.bake_seconds is None else options.bake_seconds
        return resolve(
            self.settings,
            observed,
            self.artifacts(bucket or self.settings.artifacts_bucket),
            run_id=self.run_id,
            role_arn=role,
            bake_seconds=seconds,
            poll_seconds=options.poll_seconds,
            settle_seconds=options.role_settle_seconds,
            recreate=self.recreate,
            allow_replacement=options.allow_replacement,
        )


def rollout_stack_name(settings: EnvironmentSettings) -> str:
    """One rollout stack per environment, named after its compute stack (cc-websocket-rollout)."""
    return settings.stacks["compute"].removesuffix("-compute") + "-rollout"


def new_run_id(now: Callable[[], float] = time.time) -> str:
    """Unique per run (change-set names never collide) and in the order runs start, to the
    millisecond: the release history is sorted by it, and runs one after another (the lock
    serializes them) can start within one second."""
    return f"{int(now() * 1000)}-{secrets.token_hex(4)}"


@contextmanager
def prepare(
    settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options, engine: str
) -> Iterator[Prepared]:
    """Preparation under the environment's lock (held at least as long as the run's bound,
    `options.max_minutes`), released when the block ends, however it ends."""
    identity = aws.identity()
    report.line(
        "preflight",
        f"account {identity['account']} ({identity['arn']}), region {settings.region}, "
        f"environment {settings.name}, engine {engine}" + (" - DRY RUN" if options.dry_run else ""),
    )
    texts = preflight.rendered_templates(options.project) | (options.templates or {})  # a rollback's own
    for text in texts.values():  # parsed once, kept in .cache/ for the next run
        artifacts.load_template(text, options.project.cache)
    preflight.check_bucket(aws, settings.artifacts_bucket)
    run_id = new_run_id()
    held = lock.new(settings.name, identity["arn"], run_id, engine, hold=lock.hold_for(options.max_minutes))
    with lock.Holding(aws, settings.artifacts_bucket, held, report) as holding:
        yield _under_lock(settings, aws, report, options, identity, texts, run_id, holding)


def _under_lock(
    settings: EnvironmentSettings,
    aws: Aws,
    report: Reporter,
    options: Options,
    identity: dict[str, str],
    texts: dict[str, str],
    run_id: str,
    holding: lock.Holding,
) -> Prepared:
    refuse_stale_rollback(aws, settings, options)
    observed = observe(aws, settings, identity)
    refuse_while_running(aws, observed.rollout)  # both engines, before any question or change
    warn_outside_variables(aws, observed.stacks["compute"], texts["compute"], report)
    drift = drifted(aws, settings, observed, report, options)
    recreate = _approve_recreates(settings, observed.stacks, report, options)
    _approve_renames(settings, observed.stacks, report, options)
    target = package.Target(architecture=settings.parameters.get("compute", {}).get("Architecture", "arm64"))
    built = options.build_package(target, options.project)
    return Prepared(settings, observed, built, texts, recreate, run_id, drift, identity["arn"], holding)


def refuse_stale_rollback(aws: Aws, settings: EnvironmentSettings, options: Options) -> None:
    """A rollback chose its target from the history before it held the lock: a release recorded
    since then would be undone without anyone having chosen to."""
    if not options.rollback:
        return
    newest = releases.listed(aws.client("s3"), settings.artifacts_bucket, settings.name)
    if newest and newest[-1] != options.rollback["of"]:
        raise PlanRefused(
            f"release {newest[-1]} was recorded after this rollback chose to undo {options.rollback['of']}: "
            f"nothing changed; run `python -m rollout rollback --env {settings.name}` again to choose from "
            "the history as it is now"
        )


def drifted(
    aws: Aws, settings: EnvironmentSettings, observed: Observed, report: Reporter, options: Options
) -> dict[str, list[str]]:
    """What changed behind the stacks' backs (DetectStackDrift), each resource a WARNING line: a
    change set does not undo drift in properties the plan leaves as they are."""
    names = [
        settings.stacks[s] for s, state in observed.stacks.items() if state is not None and state.status in UPDATABLE
    ]
    found = live.drift(aws.client("cloudformation"), names, options.sleep, options.poll_seconds) if names else {}
    for stack, lines in found.items():
        for line in lines:
            report.line("preflight", f"WARNING drift in {stack}: {line}")
    return found


def observe(aws: Aws, settings: EnvironmentSettings, identity: dict[str, str]) -> Observed:
    """What AWS holds now; a stack that cannot be deployed now is refused here."""
    cloudformation = aws.client("cloudformation")
    stacks = {stage: describe(cloudformation, settings.stacks[stage]) for stage in STACK_TEMPLATES}
    for stage, state in stacks.items():
        problem = preflight.refusal(settings.stacks[stage], state)
        if problem:
            raise preflight.PreflightFailed(problem, exit_code=1)
    role = aws.client("apigateway").get_account().get("cloudwatchRoleArn") or ""
    consumers = find_consumers(aws, settings.endpoint_consumers, identity["account"])
    return Observed(
        identity["account"],
        identity["arn"].split(":")[1],
        stacks,
        role,
        consumers,
        describe(cloudformation, rollout_stack_name(settings)),
    )


def warn_outside_variables(aws: Aws, compute: StackState | None, template_text: str, report: Reporter) -> None:
    """A compute update rewrites the functions' environment from the template: say which variables
    added outside it would go, before anything runs."""
    functions = [v for k, v in (compute.outputs if compute else {}).items() if k.endswith("FunctionName")]
    if not functions:
        return
    resources = artifacts.load_template(template_text)["Resources"]
    ours = {
        name
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        for name in r["Properties"]["Environment"]["Variables"]
    }
    functions = sorted(functions)
    for function, config in zip(functions, live.configurations(aws.client("lambda"), functions), strict=True):
        variables = config.get("Environment", {})
        outside = sorted(set(variables.get("Variables", {})) - ours)
        if outside:
            report.line(
                "compute",
                f"WARNING {function} carries {', '.join(outside)}, which the template does not "
                "set: an update of the compute stack removes them (put them in the template)",
            )


def upload(aws: Aws, plan: Plan, prepared: Prepared, report: Reporter, *, dry_run: bool) -> bool:
    """The handlers zip (unless a dry run) and the templates into the plan's bucket (a change set can
    only be planned from S3, so the templates go in a dry run too); True when the zip was new."""
    s3, artifact = aws.client("s3"), prepared.artifact
    uploaded = artifacts.upload_if_absent(
        s3, plan.artifacts_bucket, artifact.s3_key, artifact.path.read_bytes(), dry_run=dry_run
    )
    artifacts.upload_templates(s3, plan.artifacts_bucket, plan.region, prepared.texts)
    where = ("uploaded" if not dry_run else "would be uploaded") if uploaded else "already in the bucket"
    report.line("package", f"{artifact.s3_key} ({artifact.size:,} bytes) {where} (s3://{plan.artifacts_bucket})")
    return uploaded


def find_consumers(aws: Aws, names: tuple[str, ...], account: str) -> tuple[Consumer, ...]:
    """Each endpoint consumer's ARN and role; one that does not exist, or runs as a role of another
    account (which this stack cannot grant), is refused by name before anything changes."""
    lambda_client, found = aws.client("lambda"), []
    for name in names:
        try:
            config = lambda_client.get_function_configuration(FunctionName=name)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                raise preflight.PreflightFailed(
                    f"endpoint consumer {name} does not exist in {aws.region}: fix endpoint_consumers"
                ) from None
            raise
        role_account = config["Role"].split(":")[4]
        if role_account != account:
            raise preflight.PreflightFailed(
                f"endpoint consumer {name} runs as {config['Role']}, a role of account {role_account}: this stack "
                f"can grant only roles of {account}; grant that role ManageConnections in its own account"
            )
        found.append(Consumer(name, config["FunctionArn"], config["Role"]))
    return tuple(found)


def _approve_renames(
    settings: EnvironmentSettings, states: dict[str, StackState | None], report: Reporter, options: Options
) -> None:
    """A new NamePrefix renames every resource: CloudFormation replaces them, and the old log
    groups go with their logs. Say so, and ask."""
    after = settings.parameters.get("compute", {}).get("NamePrefix", "cc")
    for stage, state in states.items():
        before = state.parameters.get("NamePrefix") if state else None
        if before is None or before == after:
            continue
        why = (
            f"{settings.stacks[stage]}: NamePrefix changes from {before} to {after}: every named resource is "
            f"replaced and the log groups of {Names(before).stem}-* are deleted with their logs"
        )
        if options.dry_run:
            report.line("preflight", f"WARNING {why}")
        elif not options.confirm(f"{why}. Go on?"):
            raise Declined(f"{settings.stacks[stage]}: NamePrefix left at {before}")


def _approve_recreates(
    settings: EnvironmentSettings, states: dict[str, StackState | None], report: Reporter, options: Options
) -> frozenset[str]:
    """A first create that rolled back holds nothing; re-creating it deletes it first: ask once."""
    approved = set()
    for stage, state in states.items():
        if state is None or state.status != "ROLLBACK_COMPLETE":
            continue
        name = settings.stacks[stage]
        why = f"{name} is ROLLBACK_COMPLETE: its first create failed and it holds no resources"
        if options.dry_run:
            report.line("preflight", f"{why}; a real run deletes it and creates it again")
        elif options.confirm(f"{why}. Delete it and create it again?"):
            approved.add(name)
        else:
            raise Declined(f"{name}: left in ROLLBACK_COMPLETE")
    return frozenset(approved)


def refuse_while_running(aws: Aws, rollout: StackState | None) -> None:
    """One execution at a time: a second one would change the stacks under the first. (No
    Step Functions client is made where the environment has no state machine.)"""
    machine = rollout.outputs.get("StateMachineArn", "") if rollout else ""
    running = (
        machine
        and aws.client("stepfunctions").list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
    )
    if running:
        raise Declined(
            f"execution {running[0]['executionArn']} of {machine} is still running: wait for it to end "
            "(follow it with `python -m rollout watch`), then run the rollout again"
        )
