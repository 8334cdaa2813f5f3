"""The generated state machine, executed for real in the emulator: fresh and no-op rollouts, the
endpoint merge, the same end state as the local engine, and every failure branch."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto.cloudformation.models import CloudFormationBackend, cloudformation_backends

from generator.model import ENDPOINT_VARIABLE
from generator.rollout_stack import template_parameters
from generator.statemachine import definition, substituted, with_poll_limit
from rollout import artifacts, engine, package, sfn_engine
from rollout.aws import Aws
from rollout.preflight import rendered_templates
from rollout.rehearsal import expected, prepare_account, prove
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.stacks import Declined
from tests.rollout.conftest import Run

ACCOUNT, REGION = "123456789012", "eu-west-1"
TRIVIAL = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'


def run_sfn(emulator: str, env: EnvironmentSettings, artifact: package.Artifact, report: io.StringIO | None = None,
            **options: Any) -> tuple[dict[str, Any], Aws]:  # fmt: skip
    aws = Aws(env.region, endpoint_url=emulator)
    prepare_account(aws, env)
    chosen = engine.Options(poll_seconds=0, build_package=lambda _t: artifact, **options)
    return sfn_engine.run(env, aws, Reporter(report or io.StringIO()), chosen).to_dict(), aws


def test_fresh_then_no_op(emulator: str, env_settings: EnvironmentSettings, built_artifact: package.Artifact) -> None:
    first, aws = run_sfn(emulator, env_settings, built_artifact)
    assert first["result"] == "succeeded"
    prove(aws, first["management_endpoint"], expected(aws, env_settings, rendered_templates()["compute"]))
    assert first["state_machine_calls"]["executeChangeSet"] == 3  # compute, websocket, carry
    assert first["state_machine_calls"]["updateFunctionConfiguration"] == 6  # every function, notify and migrate too
    second, _ = run_sfn(emulator, env_settings, built_artifact)
    assert second["result"] == "succeeded"
    assert "executeChangeSet" not in second["state_machine_calls"]
    assert "updateFunctionConfiguration" not in second["state_machine_calls"]
    assert second["management_endpoint"] == first["management_endpoint"]


def test_endpoint_merge_keeps_other_variables(emulator: str, env_settings: EnvironmentSettings,
                                              built_artifact: package.Artifact) -> None:  # fmt: skip
    first, aws = run_sfn(emulator, env_settings, built_artifact)
    lam = aws.client("lambda")
    variables = lam.get_function_configuration(FunctionName="cc-websocket-connect")["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName="cc-websocket-connect", Environment={"Variables": {
        **{k: str(v) for k, v in variables.items()}, "FEATURE_FLAG": "on", ENDPOINT_VARIABLE: "https://stale/x"}})  # fmt: skip
    second, _ = run_sfn(emulator, env_settings, built_artifact)
    after = lam.get_function_configuration(FunctionName="cc-websocket-connect")["Environment"]["Variables"]
    assert after["FEATURE_FLAG"] == "on" and after[ENDPOINT_VARIABLE] == first["management_endpoint"]
    assert second["state_machine_calls"]["updateFunctionConfiguration"] == 1


def snapshot(aws: Aws, env: EnvironmentSettings) -> dict[str, Any]:
    """The deployed state, with ids and the bucket name (which differ between runs) masked."""
    cf, lam, apigw = aws.client("cloudformation"), aws.client("lambda"), aws.client("apigatewayv2")
    state: dict[str, Any] = {}
    for stage, name in env.stacks.items():
        (stack,) = cf.describe_stacks(StackName=name)["Stacks"]
        state[stage] = {"status": stack["StackStatus"],
                        "parameters": {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]},
                        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}}  # fmt: skip
    state["functions"] = {f["FunctionName"]: {k: str(v) for k, v in f.get("Environment", {}).get("Variables", {}).items()}
                          for f in lam.list_functions()["Functions"]}  # fmt: skip
    (api,) = apigw.get_apis()["Items"]
    state["routes"] = sorted(r["RouteKey"] for r in apigw.get_routes(ApiId=api["ApiId"])["Items"])
    text = json.dumps(state, sort_keys=True).replace(api["ApiId"], "API")
    # moto shows an explicitly passed empty CommaDelimitedList as "['']", a defaulted one as "".
    text = text.replace("\"['']\"", '""')
    text = text.replace(state["compute"]["parameters"]["CodeS3Bucket"], "BUCKET")
    return json.loads(re.sub(r"[a-z]{8}(?=\.execute-api)", "API", text))


def test_end_state_equals_the_local_engine(rollout: Run, emulator: str, env_settings: EnvironmentSettings,
                                           built_artifact: package.Artifact) -> None:  # fmt: skip
    _, local_aws, _ = rollout(env_settings)
    local = snapshot(local_aws, env_settings)
    import urllib.request

    from rollout.emulator import enable_state_machines

    urllib.request.urlopen(urllib.request.Request(f"{emulator}/moto-api/reset", method="POST")).read()
    enable_state_machines(emulator)
    _, sfn_aws = run_sfn(emulator, env_settings, built_artifact)
    assert snapshot(sfn_aws, env_settings) == local


@pytest.fixture
def machine(
    emulator: str, env_settings: EnvironmentSettings, built_artifact: package.Artifact
) -> Iterator[Callable[..., tuple[str, str]]]:
    """Runs the generated definition directly (no preflight) and returns (status, error)."""
    aws = Aws(env_settings.region, endpoint_url=emulator)
    prepare_account(aws, env_settings)
    aws.client("s3").put_object(Bucket=env_settings.artifacts_bucket, Key=built_artifact.s3_key,
                                Body=built_artifact.path.read_bytes())  # fmt: skip
    stored = artifacts.upload_templates(aws.client("s3"), env_settings.artifacts_bucket, env_settings.region,
                                        rendered_templates())  # fmt: skip
    sfn = aws.client("stepfunctions")
    causes: list[str] = []

    def execute(max_polls: int = 720) -> tuple[str, str]:
        text = substituted(with_poll_limit(definition(template_parameters()), max_polls),
                           {"CloudFormationRoleArn": f"arn:aws:iam::{ACCOUNT}:role/cfn", "Partition": "aws"})  # fmt: skip
        arn = sfn.create_state_machine(name=f"m{max_polls}-{uuid.uuid4().hex[:8]}", definition=text,
                                       roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]  # fmt: skip
        document = sfn_engine.execution_input(engine.plan_for(env_settings), stored,
                                              built_artifact.s3_key, {}, poll_seconds=0)  # fmt: skip
        started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(document))
        result = sfn_engine.follow(sfn, started["executionArn"], Reporter(io.StringIO()), poll_seconds=0.2)
        failed = [e["executionFailedEventDetails"] for e in result["events"] if "executionFailedEventDetails" in e]
        causes.append(failed[0].get("cause", "") if failed else "")
        return result["status"], failed[0]["error"] if failed else ""

    execute.causes = causes  # type: ignore[attr-defined]
    yield execute


def backend() -> CloudFormationBackend:
    return cloudformation_backends[ACCOUNT][REGION]


def existing_compute_stack(status: str) -> None:
    stack = backend().create_stack("cc-websocket-compute", TRIVIAL, {})
    stack.status = status


@pytest.mark.parametrize(("status", "error"), [("UPDATE_IN_PROGRESS", "StackBusy"),
                                               ("UPDATE_ROLLBACK_FAILED", "UpdateRollbackFailed")])  # fmt: skip
def test_busy_and_stuck_stacks_end_in_their_fail_states(machine: Callable[..., tuple[str, str]], status: str,
                                                        error: str) -> None:  # fmt: skip
    existing_compute_stack(status)
    assert machine() == ("FAILED", error)
    assert machine.causes[-1].startswith(f"cc-websocket-compute is {status}")  # type: ignore[attr-defined]


def test_a_failed_change_set_ends_in_change_set_failed(machine: Callable[..., tuple[str, str]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    original = CloudFormationBackend.create_change_set

    def failing(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> Any:
        ids = original(self, *args, **kwargs)
        change_set = self.change_sets[ids[0]]
        change_set.status, change_set.status_reason = (
            "FAILED",
            "Template format error: unsupported structure",
        )
        return ids

    monkeypatch.setattr(CloudFormationBackend, "create_change_set", failing)
    assert machine() == ("FAILED", "ChangeSetFailed")
    assert machine.causes[-1] == "Template format error: unsupported structure"  # type: ignore[attr-defined]


def test_a_stack_that_rolls_back_ends_in_stack_failed(machine: Callable[..., tuple[str, str]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def rolled_back(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        self.stacks[self.describe_change_set(change_set_name).stack_id].status = "ROLLBACK_COMPLETE"  # type: ignore[union-attr]

    monkeypatch.setattr(CloudFormationBackend, "execute_change_set", rolled_back)
    assert machine() == ("FAILED", "StackFailed")
    # moto keeps no StackStatusReason, so the cause falls back to the final status
    assert machine.causes[-1].startswith("cc-websocket-compute ended ROLLBACK_COMPLETE")  # type: ignore[attr-defined]


def test_a_stack_that_never_settles_times_out(machine: Callable[..., tuple[str, str]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def stuck(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        self.stacks[self.describe_change_set(change_set_name).stack_id].status = "CREATE_IN_PROGRESS"  # type: ignore[union-attr]

    monkeypatch.setattr(CloudFormationBackend, "execute_change_set", stuck)
    assert machine(max_polls=3) == ("FAILED", "TimedOut")


def test_describe_errors_other_than_missing_end_in_describe_failed(machine: Callable[..., tuple[str, str]],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from moto.cloudformation.exceptions import ValidationError

    def denied(self: CloudFormationBackend, name_or_stack_id: str) -> Any:
        raise ValidationError(name_or_stack_id, message="User is not authorized to perform DescribeStacks")

    monkeypatch.setattr(CloudFormationBackend, "describe_stacks", denied)
    assert machine() == ("FAILED", "DescribeFailed")


def test_a_first_create_that_rolled_back_is_deleted_and_created_again(
    machine: Callable[..., tuple[str, str]],
) -> None:
    existing_compute_stack("ROLLBACK_COMPLETE")
    assert machine() == ("SUCCEEDED", "")
    (compute,) = [s for s in backend().stacks.values() if s.name == "cc-websocket-compute"]
    assert compute.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE") and "ConnectFunction" in compute.template


def test_a_failed_function_update_ends_in_function_update_failed(machine: Callable[..., tuple[str, str]],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.get_configuration

    def failed_after_update(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
        config = original(self, on_create)
        if config.get("Environment", {}).get("Variables", {}).get(ENDPOINT_VARIABLE, "").startswith("https://"):
            config["LastUpdateStatus"] = "Failed"
        return config

    monkeypatch.setattr(LambdaFunction, "get_configuration", failed_after_update)
    assert machine() == ("FAILED", "FunctionUpdateFailed")


def test_a_dry_run_shows_every_stages_change_set_and_changes_nothing(
    emulator: str, env_settings: EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    log = io.StringIO()
    summary, aws = run_sfn(emulator, env_settings, built_artifact, log, dry_run=True)
    assert [s["stage"] for s in summary["stages"]] == [
        "rollout",
        "compute",
        "websocket",
        "endpoint",
    ]
    assert {s["action"] for s in summary["stages"]} == {"planned"}
    text = log.getvalue()
    assert "Add      RolloutStateMachine" in text and "Add      ConnectFunction" in text and "Add      Stage" in text
    assert aws.client("cloudformation").describe_stacks()["Stacks"] == []


@pytest.mark.parametrize("answer", [False, True])
def test_a_rolled_back_stack_is_recreated_only_after_the_same_question(
    emulator: str, env_settings: EnvironmentSettings, built_artifact: package.Artifact, answer: bool
) -> None:
    existing_compute_stack("ROLLBACK_COMPLETE")
    questions: list[str] = []
    confirm = lambda question: questions.append(question) or answer  # noqa: E731
    if not answer:
        with pytest.raises(Declined, match="left in ROLLBACK_COMPLETE"):
            run_sfn(emulator, env_settings, built_artifact, confirm=confirm)
        assert backend().describe_stacks("cc-websocket-compute")[0].status == "ROLLBACK_COMPLETE"
    else:
        summary, _ = run_sfn(emulator, env_settings, built_artifact, confirm=confirm)
        assert summary["result"] == "succeeded"
    assert [q for q in questions if "ROLLBACK_COMPLETE" in q] == [
        "cc-websocket-compute is ROLLBACK_COMPLETE: its first create failed and it holds no resources. "
        "Delete it and create it again?"]  # fmt: skip


def test_every_stages_change_set_is_shown_and_asked_about_once_before_the_execution_starts(
    emulator: str, env_settings: EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    log, questions = io.StringIO(), []
    summary, _ = run_sfn(emulator, env_settings, built_artifact, log,
                         confirm=lambda q: questions.append(q) or True)  # fmt: skip
    assert summary["result"] == "succeeded"
    text = log.getvalue()
    assert text.index("Add      ConnectFunction") < text.index("Add      Stage") < text.index("execution arn:")
    assert questions.count("Start the execution that applies these changes?") == 1


@pytest.mark.parametrize("follow_it", [True, False])
def test_a_running_execution_is_followed_or_left_alone_never_raced(
    emulator: str, env_settings: EnvironmentSettings, built_artifact: package.Artifact, follow_it: bool
) -> None:
    first, aws = run_sfn(emulator, env_settings, built_artifact)
    sfn = aws.client("stepfunctions")
    machine = first["execution"].replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
    before = len(sfn.list_executions(stateMachineArn=machine)["executions"])

    def still_running(**kwargs: Any) -> dict[str, Any]:  # moto cannot hold an execution open
        return {"executions": [{"executionArn": first["execution"], "status": "RUNNING"}]}

    questions: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            Aws,
            "client",
            lambda self, service, _real=Aws.client: (
                _with(_real(self, service), list_executions=still_running)
                if service == "stepfunctions"
                else _real(self, service)
            ),
        )
        if follow_it:
            summary, _ = run_sfn(emulator, env_settings, built_artifact, confirm=lambda q: questions.append(q) or True)
            assert summary["execution"] == first["execution"]
        else:
            with pytest.raises(Declined, match="a second one would race it"):
                run_sfn(emulator, env_settings, built_artifact, confirm=lambda q: questions.append(q) or False)
    assert questions[0].startswith(f"execution {first['execution']} is already running")
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == before  # none started


def _with(client: Any, **overrides: Any) -> Any:
    for name, value in overrides.items():
        setattr(client, name, value)
    return client


def test_the_state_machine_bakes_and_an_alarm_in_alarm_fails_it_by_name(
    emulator: str, env_settings: EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    """The same bake step as the local engine (tests/rollout/test_bake.py), run by the state machine."""
    report = io.StringIO()
    first, aws = run_sfn(emulator, env_settings, built_artifact, report, bake_seconds=3)
    bake = next(stage for stage in first["stages"] if stage["stage"] == "bake")
    assert bake["action"] == "succeeded" and bake["detail"].startswith("4 look(s)")  # looks at 0, 1, 2, 3 s
    assert first["state_machine_calls"]["describeAlarms"] == 4
    aws.client("cloudwatch").set_alarm_state(AlarmName="cc-websocket-alarm-notify-errors", StateValue="ALARM",
                                             StateReason="Threshold Crossed: 2 datapoints")  # fmt: skip
    with pytest.raises(sfn_engine.StageFailed) as failed:
        run_sfn(emulator, env_settings, built_artifact, bake_seconds=3)
    assert "AlarmFired" in str(failed.value)
    (cause,) = failed.value.details
    assert "cc-websocket-alarm-notify-errors" in cause and "Threshold Crossed: 2 datapoints" in cause
    no_bake, _ = run_sfn(emulator, env_settings, built_artifact, bake_seconds=0)
    assert no_bake["result"] == "succeeded" and "bake" not in {s["stage"] for s in no_bake["stages"]}


def test_a_long_bake_stretches_its_interval_to_stay_within_the_bound(
    env_settings: EnvironmentSettings,
) -> None:
    from generator.statemachine import MAX_POLLS
    from rollout.prepare import plan_for

    plan = plan_for(env_settings)
    stored = {stem: artifacts.StoredTemplate(stem, "", f"https://b.s3.amazonaws.com/templates/{stem}.yaml")
              for stem in ("compute", "websocket")}  # fmt: skip
    document = sfn_engine.execution_input(plan, stored, "handlers/x.zip", {}, 2, (), 21_600)
    assert document["bake"]["checks"] <= MAX_POLLS
    assert document["bake"]["checks"] * document["bake"]["waitSeconds"] >= 21_600
    assert document["bake"]["alarmPrefix"] == "cc-websocket-alarm-"
