"""What both engines do before their first change, in one place and one order:

  who and where -> templates_out/ fresh -> the environment's bucket -> the stacks deployable
  (a ROLLBACK_COMPLETE stack re-created only after a yes) -> the account's logging role decided
  -> the endpoint consumers found (their roles granted the stage's management API) -> the handlers built (reused when unchanged) -> code and templates uploaded -> the stacks'
  current outputs.

The local engine (`rollout.engine`) then runs the stages from here; the Step Functions engine
(`rollout.sfn_engine`) hands the same plan to its state machine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from botocore.exceptions import ClientError

from generator.stages import CONSUMER_ROLES_PARAMETER
from rollout import artifacts, package, preflight
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import Plan, frozen, make_plan
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.stacks import Declined, StackState


@dataclass(frozen=True)
class Prepared:
    plan: Plan
    account: str
    artifact: package.Artifact
    uploaded: bool  # the zip was not in the bucket (a dry run uploads nothing but the templates)
    templates: dict[str, artifacts.StoredTemplate]
    outputs: dict[str, dict[str, str]]
    approved_recreates: frozenset[str]  # ROLLBACK_COMPLETE stacks the engineer agreed to re-create
    consumers: tuple[Consumer, ...] = ()


@dataclass(frozen=True)
class Consumer:
    """A function outside the stacks that gets the endpoint, and the role it runs as."""

    function: str  # as the settings name it
    function_arn: str
    role_arn: str

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]


def plan_for(settings: EnvironmentSettings) -> Plan:
    return make_plan(settings.name, settings.region, settings.artifacts_bucket, settings.stacks, settings.parameters,
                     settings.bake_seconds)  # fmt: skip


def prepare(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options, engine: str) -> Prepared:
    plan = plan_for(settings)
    identity = aws.identity()
    report.line(
        "preflight",
        f"account {identity['account']} ({identity['arn']}), region {plan.region}, "
        f"environment {plan.environment}, engine {engine}" + (" - DRY RUN" if options.dry_run else ""),
    )
    texts = preflight.rendered_templates()
    preflight.check_bucket(aws, plan.artifacts_bucket)
    states = preflight.stack_states(aws, plan)
    approved = _approve_recreates(plan, states, report, options)
    _approve_renames(plan, states, report, options)
    plan = preflight.with_account_role(aws, plan, report)
    consumers = find_consumers(aws, settings.endpoint_consumers, identity["account"], report)
    plan = _with_consumer_roles(plan, consumers)
    target = package.Target(architecture=plan.stack("compute").parameters.get("Architecture", "arm64"))
    artifact = options.build_package(target)
    s3 = aws.client("s3")
    # The local engine deploys the zip from the environment's bucket; the Step Functions engine ships
    # it to the rollout stack's own bucket, so it is not uploaded twice.
    uploaded = engine == "local" and artifacts.upload_if_absent(
        s3, plan.artifacts_bucket, artifact.s3_key, artifact.path.read_bytes(), dry_run=options.dry_run
    )
    templates = artifacts.upload_templates(s3, plan.artifacts_bucket, plan.region, texts)
    where = ("uploaded" if not options.dry_run else "would be uploaded") if uploaded else "already in the bucket"
    if engine != "local":
        where = "for the rollout stack's bucket"
    report.line("package", f"{artifact.s3_key} ({artifact.size:,} bytes) {where}")
    outputs = {stage: state.outputs if state else {} for stage, state in states.items()}
    return Prepared(plan, identity["account"], artifact, uploaded, templates, outputs, approved, consumers)


def find_consumers(aws: Aws, names: tuple[str, ...], account: str, report: Reporter) -> tuple[Consumer, ...]:
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
    if found:
        report.line(
            "preflight", "endpoint consumers: " + ", ".join(f"{c.function} (role {c.role_name})" for c in found)
        )
    return tuple(found)


def _with_consumer_roles(plan: Plan, consumers: tuple[Consumer, ...]) -> Plan:
    stage_name, parameter = CONSUMER_ROLES_PARAMETER
    roles = ",".join(sorted({c.role_name for c in consumers}))
    stacks = tuple(
        replace(stage, parameters=frozen({**stage.parameters, parameter: roles}))
        if stage.stage == stage_name
        else stage
        for stage in plan.stacks
    )
    return replace(plan, stacks=stacks)


def _approve_renames(plan: Plan, states: dict[str, StackState | None], report: Reporter, options: Options) -> None:
    """A new NamePrefix renames every resource: CloudFormation replaces them, and the old log
    groups go with their logs. Say so, and ask."""
    for stage in plan.stacks:
        state = states[stage.stage]
        before, after = (
            (state.parameters.get("NamePrefix") if state else None),
            stage.parameters.get("NamePrefix", "cc"),
        )
        if before is None or before == after:
            continue
        why = (f"{stage.stack_name}: NamePrefix changes from {before} to {after}: every named resource is replaced and "
               f"the log groups of {before}-websocket-* are deleted with their logs")  # fmt: skip
        if options.dry_run:
            report.line("preflight", f"WARNING {why}")
        elif not options.confirm(f"{why}. Go on?"):
            raise Declined(f"{stage.stack_name}: NamePrefix left at {before}")


def _approve_recreates(plan: Plan, states: dict[str, StackState | None], report: Reporter,
                       options: Options) -> frozenset[str]:  # fmt: skip
    """A first create that rolled back holds nothing; re-creating it deletes it first: ask once."""
    approved = set()
    for stage in plan.stacks:
        state = states[stage.stage]
        if state is None or state.status != "ROLLBACK_COMPLETE":
            continue
        why = f"{stage.stack_name} is ROLLBACK_COMPLETE: its first create failed and it holds no resources"
        if options.dry_run:
            report.line("preflight", f"{why}; a real run deletes it and creates it again")
        elif options.confirm(f"{why}. Delete it and create it again?"):
            approved.add(stage.stack_name)
        else:
            raise Declined(f"{stage.stack_name}: left in ROLLBACK_COMPLETE")
    return frozenset(approved)
