"""The local engine: execute the prepared plan with boto3.

Pipeline (a dry run is the same pipeline with nothing executed):
  prepare (rollout.prepare: checks, package, upload, current outputs) -> each stack stage in plan
  order (outputs feed the next stage's parameters) -> endpoint stage (merge the variable into
  every function, then carry it into the compute stack's parameter) -> bake (watch the stacks'
  alarms for the environment's bake_seconds; one in ALARM fails the run) -> summary.
A stage that fails stops the run: later stages do not start. Re-running resumes: finished
stages are recognised as unchanged and cost no mutating call.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.stages import ARTIFACT_PARAMETERS
from rollout import bake, endpoints
from rollout.aws import Aws
from rollout.options import Options
from rollout.plan import StackStage, wired_parameters
from rollout.prepare import Prepared, plan_for, prepare
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.stacks import StackDeployer, describe
from rollout.summary import ArtifactSummary, StageResult, Summary

__all__ = ["Options", "execute", "plan_for", "run"]


def run(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    return execute(prepare(settings, aws, report, options, "local"), aws, report, options)


def execute(prepared: Prepared, aws: Aws, report: Reporter, options: Options) -> Summary:
    return _Execution(prepared, aws, report, options).run()


@dataclass
class _Execution:
    """One run of the plan: the stack stages in order, then the endpoint stage."""

    prepared: Prepared
    aws: Aws
    report: Reporter
    options: Options

    def __post_init__(self) -> None:
        plan, artifact = self.prepared.plan, self.prepared.artifact
        self.outputs = {stage: dict(values) for stage, values in self.prepared.outputs.items()}
        code = (plan.artifacts_bucket, artifact.s3_key)
        self.parameters = {stage.stage: dict(stage.parameters) for stage in plan.stacks}
        self.parameters["compute"].update(zip(ARTIFACT_PARAMETERS["compute"], code, strict=True))
        self.deployer = StackDeployer(
            self.aws.client("cloudformation"), self.report, confirm=self.options.confirm,
            dry_run=self.options.dry_run, poll_seconds=self.options.poll_seconds, sleep=self.options.sleep,
            approved_recreates=self.prepared.approved_recreates,
        )  # fmt: skip

    def run(self) -> Summary:
        plan, artifact, dry = self.prepared.plan, self.prepared.artifact, self.options.dry_run
        summary = Summary(plan.environment, plan.region, account=self.prepared.account, dry_run=dry,
                          artifact=ArtifactSummary(artifact.s3_key, artifact.sha256, self.prepared.uploaded and not dry))  # fmt: skip
        self.warn_outside_variables()
        for stage in plan.stacks:
            summary.stages.append(self.stack(stage))
        summary.stages.append(self.endpoint())
        if (baked := self.bake()) is not None:
            summary.stages.append(baked)
        summary.management_endpoint = self.outputs["websocket"].get("WebSocketManagementEndpoint", "")
        summary.websocket_url = self.outputs["websocket"].get("WebSocketStageInvokeUrl", "")
        summary.result = "planned" if dry else "succeeded"
        return summary

    def bake(self) -> StageResult | None:
        """Watch the stacks' alarms (rollout/bake.py); the same step as the state machine's."""
        plan = self.prepared.plan
        seconds = plan.bake_seconds if self.options.bake_seconds is None else self.options.bake_seconds
        return bake.bake(
            self.aws.client("cloudwatch"), bake.alarm_prefix(plan.name_prefix), seconds, self.report,
            poll_seconds=self.options.poll_seconds, sleep=self.options.sleep, dry_run=self.options.dry_run,
        )  # fmt: skip

    def warn_outside_variables(self) -> None:
        """A compute update rewrites the functions' environment from the template: say which
        variables added outside it would go, before anything runs."""
        functions = [v for k, v in self.outputs.get("compute", {}).items() if k.endswith("FunctionName")]
        if not functions:
            return
        resources = self.prepared.templates["compute"].parsed()["Resources"]
        ours = {name for r in resources.values() if r["Type"] == "AWS::Lambda::Function"
                for name in r["Properties"]["Environment"]["Variables"]}  # fmt: skip
        lambda_client = self.aws.client("lambda")
        for function in sorted(functions):
            variables = lambda_client.get_function_configuration(FunctionName=function).get("Environment", {})
            outside = sorted(set(variables.get("Variables", {})) - ours)
            if outside:
                self.report.line("compute", f"WARNING {function} carries {', '.join(outside)}, which the template does not "
                                            "set: an update of the compute stack removes them (put them in the template)")  # fmt: skip

    def stack(self, stage: StackStage, extra: dict[str, str] | None = None) -> StageResult:
        parameters = wired_parameters(stage, self.outputs, self.parameters[stage.stage]) | (extra or {})
        result = self.deployer.deploy(
            stage.stage, stage.stack_name, self.prepared.templates[stage.template], parameters
        )
        self.outputs[stage.stage] = result.outputs or self.outputs[stage.stage]
        detail = f"{result.stack_name}: {len(result.changes)} change(s)" if result.changes else result.stack_name
        return StageResult(result.stage, result.action, detail, result.stack_name, result.changes)

    def endpoint(self) -> StageResult:
        """Merge the management endpoint into every function (ours, then the endpoint consumers'),
        then carry it into the compute stack's parameter so later compute deploys keep it."""
        update, dry = self.prepared.plan.endpoint, self.options.dry_run
        value = self.outputs.get(update.value_from[0], {}).get(update.value_from[1], "")
        if not value:
            self.report.line("endpoint", "the websocket stack does not exist yet: the endpoint is set by a real run")
            return StageResult("endpoint", "planned", "after the API exists")
        functions = [
            self.outputs[stage][key] for stage, key in update.functions_from if key in self.outputs.get(stage, {})
        ]
        functions += [consumer.function_arn for consumer in self.prepared.consumers]
        lambda_client = self.aws.client("lambda")
        changed = [f for f in functions
                   if endpoints.set_variable(lambda_client, f, update.variable, value, dry_run=dry, sleep=self.options.sleep)]  # fmt: skip
        for function in functions:
            done = "set" if function in changed else "already set"
            self.report.line("endpoint", f"{function}: {done}" + (" (dry run)" if dry and function in changed else ""))
        carried_stage, carried_parameter = update.carried_by
        stage = self.prepared.plan.stack(carried_stage)
        current = describe(self.aws.client("cloudformation"), stage.stack_name)
        carried = "unchanged"
        if current is not None and current.parameters.get(carried_parameter) != value:
            carried = self.stack(stage, {carried_parameter: value}).action
        action = "planned" if dry else ("updated" if changed or carried != "unchanged" else "unchanged")
        consumers = len(self.prepared.consumers)
        detail = (f"{len(changed)} of {len(functions)} function(s) changed"
                  + (f" ({consumers} endpoint consumer(s))" if consumers else "") + f"; {carried_stage} parameter {carried}")  # fmt: skip
        return StageResult("endpoint", action, detail, functions=changed)
