"""Plan now, execute later (CDK #801): `deploy --plan-out FILE` creates each stack's change set and
keeps it, and writes the plan to FILE (JSON): every parameter's value (NoEcho as ****), each change
with its property values as CloudFormation shows them (DescribeChangeSet IncludePropertyValues),
and what each stack was when the plan was made. `deploy --execute FILE` runs exactly those change
sets, through the same step code, and only if nothing changed since: the settings, templates and
handlers code hash the same, every stack has the status and last update it had, and every kept
change set still exists as CREATE_COMPLETE and AVAILABLE. Otherwise it refuses, naming what
changed, before any change (exit 2).

Local engine only: the Step Functions engine's execution creates its own change sets inside AWS
(its steps are the plan's), so a change set approved here would not be the one it runs.
Both hold the environment's lock while they run; a plan file holds no lock in between.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from rollout import engine, settings
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import Plan, PlanRefused
from rollout.prepare import Prepared, prepare, upload
from rollout.report import Reporter
from rollout.stacks import CAPABILITIES, FINGERPRINT_TAG, StageFailed, describe, fingerprint
from rollout.steps import MAX_POLLS, DeployStack, Progress, change_list, value_of
from rollout.summary import Summary

VERSION = 1
STACK_STAGES = ("compute", "websocket")  # the stack steps a plan file plans (carry follows the endpoint)


class PlanFileRefused(PlanRefused):
    """The plan file cannot be executed as it is: what changed is named; nothing was changed."""


def inputs_sha256(prepared: Prepared) -> str:
    """What the plan was made from: the settings, the templates as generated, the handlers code."""
    s = prepared.settings
    document = {
        "settings": {"region": s.region, "bucket": s.artifacts_bucket, "stacks": s.stacks, "parameters": s.parameters,
                     "consumers": list(s.endpoint_consumers), "bake": s.bake_seconds, "migrate": s.migrate},
        "templates": {stem: hashlib.sha256(text.encode()).hexdigest() for stem, text in sorted(prepared.texts.items())},
        "code": prepared.artifact.sha256,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def _stack_record(cf: Any, name: str) -> dict[str, str]:
    state = describe(cf, name)
    if state is None:
        return {"status": "DOES_NOT_EXIST", "last_updated": ""}
    return {"status": state.status, "last_updated": state.last_update}


def _keep_change_set(
    ctx: engine.LocalContext, step: DeployStack, outputs: dict[str, dict[str, str]], options: Options
) -> dict[str, Any]:
    """The step's change set, created and kept (None-free record), or `unchanged` when AWS holds the plan."""
    cf = ctx.client("cloudformation")
    state = describe(cf, step.stack_name)
    if state is None or state.status in ("REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE"):
        raise PlanFileRefused(
            f"{step.stack_name} {'does not exist' if state is None else 'is ' + state.status}: a plan file changes "
            "existing stacks only; deploy it once first (`rollout deploy`)"
        )
    missing = [
        f"{v['from']}.{v['output']}"
        for v in step.parameters.values()
        if not isinstance(v, str) and value_of(v, outputs) is None
    ]
    if missing:
        raise PlanFileRefused(f"{step.stack_name}: its inputs {', '.join(missing)} do not exist yet: deploy once first")
    parameters = step.resolved(outputs)
    shown = {k: ("****" if k in step.no_echo else v) for k, v in sorted(parameters.items())}
    record: dict[str, Any] = {"stack": step.stack_name, "stack_id": state.stack_id, "parameters": shown,
                              **_stack_record(cf, step.stack_name)}  # fmt: skip
    if step._unchanged(ctx, state, parameters) and not step._stale_code(ctx):
        return {**record, "action": "unchanged", "change_set": "", "changes": []}
    created = cf.create_change_set(
        StackName=step.stack_name,
        ChangeSetName=f"{step.change_set_name}-{step.name}",
        ChangeSetType="UPDATE",
        TemplateURL=step.template_url,
        Capabilities=CAPABILITIES,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
        Tags=[{"Key": FINGERPRINT_TAG, "Value": fingerprint(step.template_sha256, parameters)},
              {"Key": "Application", "Value": "CareConnect"}],
        Description=f"CareConnect rollout plan file, step {step.name}",
        **({"RoleARN": step.role_arn} if step.role_arn else {}),
    )  # fmt: skip
    for _ in range(MAX_POLLS):
        described = cf.describe_change_set(
            ChangeSetName=created["Id"], StackName=step.stack_name, IncludePropertyValues=True
        )
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            break
        options.sleep(max(step.wait, 1.0))
    if described["Status"] == "FAILED":
        cf.delete_change_set(ChangeSetName=created["Id"], StackName=step.stack_name)
        reason = described.get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            return {**record, "action": "unchanged", "change_set": "", "changes": []}
        raise StageFailed(f"{step.stack_name}: the change set failed: {reason or 'no reason given'}")
    changes = change_list(cf, described, step.stack_name, created["Id"])
    ctx.report.changes(step.name, step.stack_name, changes)
    details = [c["ResourceChange"] for c in described.get("Changes", [])]  # property values where AWS gives them
    return {**record, "action": "planned", "change_set": created["Id"], "changes": changes,
            "property_changes": json.loads(json.dumps(details, default=str))}  # fmt: skip


def write(path: Path, settings_: settings.EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    """`deploy --plan-out FILE`: the change sets created and kept, the plan written; nothing executed."""
    with prepare(settings_, aws, report, options, "local") as prepared:
        plan = prepared.plan(options)
        uploaded = upload(aws, plan, prepared, report, dry_run=False)  # --execute needs the code there
        ctx, outputs = engine.LocalContext(aws, report, options.confirm), engine.current_outputs(prepared)
        for line in [*plan.notes, *plan.lines()]:
            report.line("plan", line)
        stacks = {}
        for step in plan.steps:
            if isinstance(step, DeployStack) and step.name in STACK_STAGES:
                stacks[step.name] = _keep_change_set(ctx, step, outputs, options)
        document = {"version": VERSION, "environment": plan.environment, "region": plan.region,
                    "account": plan.account, "run_id": plan.run_id, "inputs_sha256": inputs_sha256(prepared),
                    "plan": plan.to_dict(), "stacks": stacks}  # fmt: skip
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        report.line("plan", f"wrote {path}: execute it with `rollout deploy --env {plan.environment} --execute {path}`")
        results = [{"stage": s, "action": r["action"], "detail": r["change_set"] or r["stack"], "stack": r["stack"],
                    "changes": r["changes"]} for s, r in stacks.items()]  # fmt: skip
        return engine.summarize(plan, prepared, aws, results, uploaded, "local", dry_run=True)


def read(path: Path, environment: str) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PlanFileRefused(f"{path}: not a plan file ({error}): make one with `rollout deploy --plan-out`") from None
    if document.get("version") != VERSION or document.get("environment") != environment:
        raise PlanFileRefused(
            f"{path}: a plan file (version {VERSION}) for environment {document.get('environment')!r}, "
            f"not {environment!r}"
        )
    return document


def changed_since(document: dict[str, Any], prepared: Prepared, cf: Any) -> list[str]:
    """Everything that is no longer as it was when the plan was made ("" when nothing)."""
    found = []
    if document["inputs_sha256"] != inputs_sha256(prepared):
        found.append("the settings, templates or handlers code are not the ones the plan was made from")
    if document["account"] != prepared.observed.account or document["region"] != prepared.settings.region:
        found.append(f"the plan was made for account {document['account']} in {document['region']}")
    for saved in document["stacks"].values():
        now = _stack_record(cf, saved["stack"])
        if (now["status"], now["last_updated"]) != (saved["status"], saved["last_updated"]):
            found.append(
                f"{saved['stack']} changed since: it was {saved['status']} (last updated {saved['last_updated'] or '-'}), "
                f"it is {now['status']} (last updated {now['last_updated'] or '-'})"
            )
        if saved["change_set"]:
            try:
                held = cf.describe_change_set(ChangeSetName=saved["change_set"], StackName=saved["stack"])
            except ClientError:  # ChangeSetNotFound: gone is what matters
                found.append(
                    f"{saved['stack']}: its change set {saved['change_set'].rsplit('/', 2)[-2]} no longer exists"
                )
                continue
            if held["Status"] != "CREATE_COMPLETE" or held.get("ExecutionStatus") != "AVAILABLE":
                found.append(
                    f"{saved['stack']}: its change set is {held['Status']}/{held.get('ExecutionStatus')}, "
                    "not CREATE_COMPLETE/AVAILABLE"
                )
    return found


def execute(
    path: Path, settings_: settings.EnvironmentSettings, aws: Aws, report: Reporter, options: Options
) -> Summary:
    """`deploy --execute FILE`: exactly the kept change sets, then the plan's other steps, if nothing changed."""
    document = read(path, settings_.name)
    with prepare(settings_, aws, report, options, "local") as prepared:  # checked and run under the lock
        changed = changed_since(document, prepared, aws.client("cloudformation"))
        if changed:
            raise PlanFileRefused(f"{path} is out of date, nothing was executed: " + "; ".join(changed)
                                  + ". Make a new plan (`rollout deploy --plan-out`)")  # fmt: skip
        plan = Plan.from_dict(document["plan"])
        ctx, outputs = engine.LocalContext(aws, report, options.confirm), engine.current_outputs(prepared)
        results = []
        for step in plan.steps:
            saved = document["stacks"].get(step.name) if isinstance(step, DeployStack) else None
            first = len(ctx.calls)
            if saved and saved["change_set"]:
                work = {"phase": "planning", "change_set": saved["change_set"], "stack_id": saved["stack_id"],
                        "creating": False, "outputs": outputs.get(step.name, {})}  # fmt: skip
                progress = step.poll(ctx, outputs, work)
            elif saved:  # unchanged when planned, and nothing changed since
                progress = Progress(True, result={"stage": step.name, "action": "unchanged", "detail": saved["stack"],
                                                  "stack": saved["stack"]})  # fmt: skip
            else:
                progress = step.start(ctx, outputs)
            while not progress.done:
                if progress.wait:
                    options.sleep(progress.wait)
                progress = step.poll(ctx, outputs, progress.work)
            assert progress.result is not None
            calls: dict[str, int] = {}
            for call in ctx.calls[first:]:
                calls[call] = calls.get(call, 0) + 1
            results.append({**progress.result, "calls": calls})
        return engine.summarize(plan, prepared, aws, results, False, "local")


def orchestrator(plan_out: Path | None, execute_file: Path | None, args: Any) -> Any:
    """The run `deploy --plan-out` / `--execute` asks for (None: neither)."""
    if plan_out is None and execute_file is None:
        return None
    if args.dry_run:
        raise settings.SettingsError(
            "--plan-out and --execute do not go with --dry-run (a plan file is a dry run kept)"
        )
    if args.engine != "local":
        raise settings.SettingsError(
            "--plan-out and --execute run with the local engine: the Step Functions execution makes its own change "
            "sets inside AWS, so it would not run the ones you approved"
        )
    if plan_out is not None:
        return lambda env, aws, report, options: write(plan_out, env, aws, report, options)
    assert execute_file is not None
    return lambda env, aws, report, options: execute(execute_file, env, aws, report, options)
