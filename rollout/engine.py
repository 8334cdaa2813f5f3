"""The local engine: execute the rollout plan with boto3.

Pipeline (a dry run is the same pipeline with nothing executed):
  preflight -> package and upload -> each stack stage in plan order (outputs feed the next
  stage's parameters) -> endpoint stage (merge the variable into every function, then carry it
  into the compute stack's parameter) -> summary.
A stage that fails stops the run: later stages do not start. Re-running resumes: finished
stages are recognised as unchanged and cost no mutating call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from generator.stages import ARTIFACT_PARAMETERS
from rollout import artifacts, endpoints, package, preflight
from rollout.aws import Aws
from rollout.plan import Plan, make_plan, wired_parameters
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.stacks import StackDeployer, StackResult, describe, existing_outputs


@dataclass
class Options:
    dry_run: bool = False
    poll_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    confirm: Callable[[str], bool] = field(default=lambda _question: True)
    build_package: Callable[[package.Target], package.Artifact] = package.build


def plan_for(settings: EnvironmentSettings) -> Plan:
    return make_plan(
        settings.name,
        settings.region,
        settings.artifacts_bucket,
        settings.stacks,
        settings.parameters,
    )


def run(
    settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options
) -> dict[str, Any]:
    plan = plan_for(settings)
    identity = aws.identity()
    report.line("preflight", f"account {identity['account']} ({identity['arn']}), region {plan.region}, "
                             f"environment {plan.environment}" + (" - DRY RUN" if options.dry_run else ""))  # fmt: skip
    texts = preflight.rendered_templates()
    preflight.check_bucket(aws, plan.artifacts_bucket)
    preflight.check_stacks(aws, plan)
    plan = preflight.with_account_role(aws, plan, report)
    base = {stage.stage: stage.parameters for stage in plan.stacks}
    summary: dict[str, Any] = {"environment": plan.environment, "region": plan.region,
                               "account": identity["account"], "stages": [], "dry_run": options.dry_run}  # fmt: skip

    compute_parameters = plan.stack("compute").parameters
    target = package.Target(architecture=compute_parameters.get("Architecture", "arm64"))
    artifact = options.build_package(target)
    s3 = aws.client("s3")
    uploaded = artifacts.upload_if_absent(s3, plan.artifacts_bucket, artifact.s3_key, artifact.path.read_bytes(),
                                          dry_run=options.dry_run)  # fmt: skip
    stored = artifacts.upload_templates(s3, plan.artifacts_bucket, plan.region, texts)
    report.line("package", f"{artifact.s3_key} ({artifact.size:,} bytes) "
                           + ("uploaded" if uploaded else "already in the bucket"))  # fmt: skip
    summary["artifact"] = {
        "s3_key": artifact.s3_key,
        "sha256": artifact.sha256,
        "uploaded": uploaded,
    }
    code = dict(
        zip(ARTIFACT_PARAMETERS["compute"], (plan.artifacts_bucket, artifact.s3_key), strict=True)
    )

    cloudformation = aws.client("cloudformation")
    deployer = StackDeployer(cloudformation, report, confirm=options.confirm, dry_run=options.dry_run,
                             poll_seconds=options.poll_seconds, sleep=options.sleep)  # fmt: skip
    outputs = existing_outputs(cloudformation, settings.stacks)
    for stage in plan.stacks:
        parameters = wired_parameters(stage, outputs, base[stage.stage])
        if stage.stage == "compute":
            parameters.update(code)
        result = deployer.deploy(stage.stage, stage.stack_name, stored[stage.template], parameters)
        outputs[stage.stage] = result.outputs or outputs[stage.stage]
        summary["stages"].append(_stage_summary(result))

    summary["stages"].append(_endpoint_stage(plan, outputs, aws, deployer, stored, {**base["compute"], **code}, report,
                                             options))  # fmt: skip
    endpoint = outputs["websocket"].get("WebSocketManagementEndpoint", "")
    summary["management_endpoint"] = endpoint
    summary["websocket_url"] = outputs["websocket"].get("WebSocketStageInvokeUrl", "")
    summary["result"] = "planned" if options.dry_run else "succeeded"
    return summary


def _stage_summary(result: StackResult) -> dict[str, Any]:
    detail = (
        f"{result.stack_name}: {len(result.changes)} change(s)"
        if result.changes
        else result.stack_name
    )
    return {"stage": result.stage, "stack": result.stack_name, "action": result.action,
            "changes": result.changes, "detail": detail}  # fmt: skip


def _endpoint_stage(plan: Plan, outputs: dict[str, dict[str, str]], aws: Aws, deployer: StackDeployer,
                    stored: dict[str, artifacts.StoredTemplate], compute_base: dict[str, str], report: Reporter,
                    options: Options) -> dict[str, Any]:  # fmt: skip
    update = plan.endpoint
    source_stage, source_key = update.value_from
    value = outputs.get(source_stage, {}).get(source_key, "")
    if not value:
        report.line(
            "endpoint", "the websocket stack does not exist yet: the endpoint is set by a real run"
        )
        return {
            "stage": "endpoint",
            "action": "planned",
            "functions": [],
            "detail": "after the API exists",
        }
    functions = [
        outputs[stage][key] for stage, key in update.functions_from if key in outputs.get(stage, {})
    ]
    lambda_client = aws.client("lambda")
    changed = [f for f in functions if endpoints.set_variable(lambda_client, f, update.variable, value,
                                                               dry_run=options.dry_run, sleep=options.sleep)]  # fmt: skip
    for function in functions:
        report.line("endpoint", f"{function}: {'set' if function in changed else 'already set'}"
                                + (" (dry run)" if options.dry_run and function in changed else ""))  # fmt: skip
    carried_stage, carried_parameter = update.carried_by
    stage = plan.stack(carried_stage)
    current = describe(aws.client("cloudformation"), stage.stack_name)
    carried = "unchanged"
    if current is not None and current.parameters.get(carried_parameter) != value:
        parameters = wired_parameters(stage, outputs, compute_base) | {carried_parameter: value}
        result = deployer.deploy(
            carried_stage, stage.stack_name, stored[stage.template], parameters
        )
        carried = result.action
    action = (
        "planned"
        if options.dry_run
        else ("updated" if changed or carried != "unchanged" else "unchanged")
    )
    return {"stage": "endpoint", "action": action, "functions": changed,
            "detail": f"{len(changed)} of {len(functions)} function(s) changed; {carried_stage} parameter {carried}"}  # fmt: skip
