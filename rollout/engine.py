"""The local engine: execute the prepared plan with boto3.

Pipeline (a dry run is the same pipeline with nothing executed):
  prepare (rollout.prepare: checks, package, upload, current outputs) -> each stack stage in plan
  order (outputs feed the next stage's parameters) -> endpoint stage (merge the variable into
  every function, then carry it into the compute stack's parameter) -> summary.
A stage that fails stops the run: later stages do not start. Re-running resumes: finished
stages are recognised as unchanged and cost no mutating call.
"""

from __future__ import annotations

from typing import Any

from generator.stages import ARTIFACT_PARAMETERS
from rollout import artifacts, endpoints
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import Plan, wired_parameters
from rollout.prepare import Prepared, plan_for, prepare
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.stacks import StackDeployer, StackResult, describe

__all__ = ["Options", "execute", "plan_for", "run"]


def run(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> dict[str, Any]:
    return execute(prepare(settings, aws, report, options, "local"), aws, report, options)


def execute(prepared: Prepared, aws: Aws, report: Reporter, options: Options) -> dict[str, Any]:
    plan, stored = prepared.plan, prepared.templates
    base = {stage.stage: dict(stage.parameters) for stage in plan.stacks}
    summary: dict[str, Any] = {
        "environment": plan.environment,
        "region": plan.region,
        "account": prepared.account,
        "stages": [],
        "dry_run": options.dry_run,
    }
    summary["artifact"] = {
        "s3_key": prepared.artifact.s3_key,
        "sha256": prepared.artifact.sha256,
        "uploaded": prepared.uploaded and not options.dry_run,
    }
    code = dict(
        zip(
            ARTIFACT_PARAMETERS["compute"],
            (plan.artifacts_bucket, prepared.artifact.s3_key),
            strict=True,
        )
    )
    deployer = StackDeployer(
        aws.client("cloudformation"),
        report,
        confirm=options.confirm,
        dry_run=options.dry_run,
        poll_seconds=options.poll_seconds,
        sleep=options.sleep,
        approved_recreates=prepared.approved_recreates,
    )
    outputs = {stage: dict(values) for stage, values in prepared.outputs.items()}
    for stage in plan.stacks:
        parameters = wired_parameters(stage, outputs, base[stage.stage])
        if stage.stage == "compute":
            parameters.update(code)
        result = deployer.deploy(stage.stage, stage.stack_name, stored[stage.template], parameters)
        outputs[stage.stage] = result.outputs or outputs[stage.stage]
        summary["stages"].append(_stage_summary(result))

    summary["stages"].append(
        _endpoint_stage(plan, outputs, aws, deployer, stored, {**base["compute"], **code}, report, options)
    )
    endpoint = outputs["websocket"].get("WebSocketManagementEndpoint", "")
    summary["management_endpoint"] = endpoint
    summary["websocket_url"] = outputs["websocket"].get("WebSocketStageInvokeUrl", "")
    summary["result"] = "planned" if options.dry_run else "succeeded"
    return summary


def _stage_summary(result: StackResult) -> dict[str, Any]:
    detail = f"{result.stack_name}: {len(result.changes)} change(s)" if result.changes else result.stack_name
    return {
        "stage": result.stage,
        "stack": result.stack_name,
        "action": result.action,
        "changes": result.changes,
        "detail": detail,
    }


def _endpoint_stage(
    plan: Plan,
    outputs: dict[str, dict[str, str]],
    aws: Aws,
    deployer: StackDeployer,
    stored: dict[str, artifacts.StoredTemplate],
    compute_base: dict[str, str],
    report: Reporter,
    options: Options,
) -> dict[str, Any]:
    update = plan.endpoint
    source_stage, source_key = update.value_from
    value = outputs.get(source_stage, {}).get(source_key, "")
    if not value:
        report.line("endpoint", "the websocket stack does not exist yet: the endpoint is set by a real run")
        return {
            "stage": "endpoint",
            "action": "planned",
            "functions": [],
            "detail": "after the API exists",
        }
    functions = [outputs[stage][key] for stage, key in update.functions_from if key in outputs.get(stage, {})]
    lambda_client = aws.client("lambda")
    changed = [
        f
        for f in functions
        if endpoints.set_variable(
            lambda_client, f, update.variable, value, dry_run=options.dry_run, sleep=options.sleep
        )
    ]
    for function in functions:
        report.line(
            "endpoint",
            f"{function}: {'set' if function in changed else 'already set'}"
            + (" (dry run)" if options.dry_run and function in changed else ""),
        )
    carried_stage, carried_parameter = update.carried_by
    stage = plan.stack(carried_stage)
    current = describe(aws.client("cloudformation"), stage.stack_name)
    carried = "unchanged"
    if current is not None and current.parameters.get(carried_parameter) != value:
        parameters = wired_parameters(stage, outputs, compute_base) | {carried_parameter: value}
        result = deployer.deploy(carried_stage, stage.stack_name, stored[stage.template], parameters)
        carried = result.action
    action = "planned" if options.dry_run else ("updated" if changed or carried != "unchanged" else "unchanged")
    return {
        "stage": "endpoint",
        "action": action,
        "functions": changed,
        "detail": f"{len(changed)} of {len(functions)} function(s) changed; {carried_stage} parameter {carried}",
    }
