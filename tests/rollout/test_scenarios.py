"""One scenario table, run by both orchestrators against the emulator: the local executor, and the
state machine whose Tasks invoke the runner function (its zip run for real by the emulator). The
same step code must give the same result and make the same AWS calls (name and target) from both.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from moto.apigateway.models import apigateway_backends
from moto.cloudformation.models import cloudformation_backends

from emulator import aws_rules
from rollout import package, settings, sfn_engine
from rollout.aws import Aws
from rollout.plan import PlanRefused
from rollout.stacks import Declined, StageFailed
from tests.conftest import reset_emulator
from tests.rollout.conftest import HOTFIX, Run, with_parameters

ENGINES = ["local", "stepfunctions"]
ACCOUNT, REGION = "123456789012", "eu-west-1"
ORCHESTRATION = ("rollout", "execution")  # the Step Functions engine's own stages


def actions(summary: dict[str, Any]) -> dict[str, str]:
    return {s["stage"]: s["action"] for s in summary["stages"] if s["stage"] not in ORCHESTRATION}


def step_calls(summary: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Each step's AWS calls ("service:Operation target": n), without the stack and change-set ids
    that differ per run."""
    found: dict[str, dict[str, int]] = {}
    for stage in summary["stages"]:
        if stage["stage"] in ORCHESTRATION:
            continue
        counted = found.setdefault(stage["stage"], {})
        for call, n in stage.get("calls", {}).items():
            key = call.split(" arn:")[0]
            counted[key] = counted.get(key, 0) + n
    return found


def stack(name: str) -> Any:
    return cloudformation_backends[ACCOUNT][REGION].get_stack(name)


@pytest.fixture(params=["local", pytest.param("stepfunctions", marks=pytest.mark.slow)])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_fresh_then_no_op(rollout: Run, env_settings: settings.EnvironmentSettings, engine_name: str) -> None:
    fresh, _, _ = rollout(env_settings, engine_name)
    assert actions(fresh) == {
        "compute": "created",
        "settle": "unchanged",
        "websocket": "created",
        "endpoint": "updated",
        "carry": "updated",
    }
    assert fresh["management_endpoint"].endswith(".execute-api.eu-west-1.amazonaws.com/prod")
    again, _, _ = rollout(env_settings, engine_name)
    assert actions(again) == dict.fromkeys(("compute", "settle", "websocket", "endpoint", "carry"), "unchanged")
    mutating = [
        c
        for calls in step_calls(again).values()
        for c in calls
        if c.split(":")[1].startswith(("Create", "Update", "Execute", "Delete"))
    ]
    assert mutating == []


def test_a_changed_parameter_and_changed_code(
    rollout: Run,
    env_settings: settings.EnvironmentSettings,
    engine_name: str,
    built_artifact: package.Artifact,
    tmp_path: Any,
) -> None:
    rollout(env_settings, engine_name)
    faster = with_parameters(env_settings, "websocket", ThrottlingRateLimit="250")
    summary, _, _ = rollout(faster, engine_name)
    assert actions(summary) == {
        "compute": "unchanged",
        "settle": "unchanged",
        "websocket": "updated",
        "endpoint": "unchanged",
        "carry": "unchanged",
    }
    (websocket,) = [s for s in summary["stages"] if s["stage"] == "websocket"]
    assert [(c["action"], c["resource"]) for c in websocket["changes"]] == [("Modify", "Stage")]
    mutating = {
        c.split(" ")[0]
        for calls in step_calls(summary).values()
        for c in calls
        if c.split(":")[1].startswith(("Create", "Update", "Execute", "Delete"))
    }
    assert mutating == {"cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"}
    api_id = summary["management_endpoint"][8:].split(".")[0]
    aws = Aws(REGION, endpoint_url=rollout.emulator)
    (stage,) = aws.client("apigatewayv2").get_stages(ApiId=api_id)["Items"]  # replaced, not doubled
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 250
    # New code is a new content-hashed key: only the compute stack changes, the endpoint stays.
    changed = tmp_path / built_artifact.path.name.replace(built_artifact.sha256[:20], "f" * 20)
    changed.write_bytes(built_artifact.path.read_bytes())
    new = package.Artifact(changed, "f" * 64, built_artifact.size, built_artifact.unzipped_size, built_artifact.target)
    summary, aws, _ = rollout(faster, engine_name, build_package=lambda *_: new)
    assert actions(summary) == {
        "compute": "updated",
        "settle": "unchanged",
        "websocket": "unchanged",
        "endpoint": "unchanged",
        "carry": "unchanged",
    }
    code = aws.client("cloudformation").describe_stacks(StackName="cc-websocket-compute")["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in code}["CodeS3Key"] == f"handlers/{changed.name}"


def _fail_the_api_stack(
    rollout: Run, env: settings.EnvironmentSettings, engine_name: str, emulator: str
) -> StageFailed:
    """A first rollout, then the API stack re-created while the account's logging role is gone:
    its stage cannot log, so the create rolls back (ROLLBACK_COMPLETE)."""
    rollout(env, engine_name)  # sets the account's role (this stack's)
    keep = with_parameters(env, "compute", CreateApiGatewayAccountRole="false")
    cf = Aws(REGION, endpoint_url=emulator).client("cloudformation")
    cf.update_termination_protection(StackName="cc-websocket-api", EnableTerminationProtection=False)
    cf.delete_stack(StackName="cc-websocket-api")

    def account_role_removed_once_read(aws: Aws) -> None:
        aws.events.register("after-call.apigateway.GetAccount", lambda **_: _remove_account_role())

    with pytest.raises(StageFailed) as failed:
        rollout(keep, engine_name, on_session=account_role_removed_once_read)
    assert "cc-websocket-api ended ROLLBACK_COMPLETE" in str(failed.value)
    return failed.value


def test_a_failed_stack_then_its_re_create(
    rollout: Run,
    env_settings: settings.EnvironmentSettings,
    engine_name: str,
    emulator: str,
) -> None:
    failed = _fail_the_api_stack(rollout, env_settings, engine_name, emulator)
    assert any("CloudWatch Logs role ARN must be set" in detail for detail in failed.details)
    questions: list[str] = []
    summary, _, _ = rollout(env_settings, engine_name, confirm=lambda q: questions.append(q) or True)
    assert any("cc-websocket-api is ROLLBACK_COMPLETE" in q for q in questions)
    assert actions(summary)["websocket"] == "created"


def test_a_stack_failure_with_no_reason(
    rollout: Run,
    env_settings: settings.EnvironmentSettings,
    engine_name: str,
    emulator: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS may leave StackStatusReason and ResourceStatusReason out; neither orchestrator may crash
    on reading them (on AWS a missing path in a state machine is States.Runtime, which no Catch takes)."""
    roll_back = aws_rules._roll_back

    def without_reasons(stack: Any, *args: Any) -> None:  # a fault-injecting double of the failure
        roll_back(stack, *args)
        stack.status_reason = None
        for event in stack.events:
            event.resource_status_reason = None

    monkeypatch.setattr(aws_rules, "_roll_back", without_reasons)
    failed = _fail_the_api_stack(rollout, env_settings, engine_name, emulator)
    assert failed.details == ["no resource reported a failure; see the stack's events"]


def _remove_account_role() -> None:
    apigateway_backends[ACCOUNT][REGION].get_account().cloudwatch_role_arn = None


def test_a_busy_stack_is_refused_before_anything_changes(
    rollout: Run, env_settings: settings.EnvironmentSettings, engine_name: str
) -> None:
    rollout(env_settings, engine_name)
    stack("cc-websocket-api").status = "UPDATE_IN_PROGRESS"  # someone else's change (moto never shows one)
    with pytest.raises(Exception, match="cc-websocket-api is UPDATE_IN_PROGRESS: someone else is changing it"):
        rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit="99"), engine_name)


def backend_consumer(aws: Aws, variables: dict[str, str] | None = None) -> None:
    """The CareConnect backend's function, outside the stacks (an endpoint consumer)."""
    role = aws.client("iam").create_role(
        RoleName="backend",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}
                ],
            }
        ),
    )["Role"]["Arn"]
    aws.client("lambda").create_function(
        FunctionName="careconnect-backend",
        Runtime="python3.12",
        Role=role,
        Handler="x.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        **({"Environment": {"Variables": variables}} if variables else {}),
    )


def with_backend(env: settings.EnvironmentSettings) -> settings.EnvironmentSettings:
    return settings.validate(
        env.name,
        env.path,
        {
            "region": REGION,
            "artifacts_bucket": env.artifacts_bucket,
            "stacks": env.stacks,
            "parameters": env.parameters,
            "endpoint_consumers": ["careconnect-backend"],
            "migrate": env.migrate,
        },
    )


@pytest.mark.slow
def test_the_execution_history_holds_no_environment_value(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    """Step Functions keeps every state's input and output for 90 days: the backend's secrets, in its
    environment, never pass through the state data (the runner reads and merges them itself)."""
    aws = Aws(REGION, endpoint_url=emulator)
    backend_consumer(aws, {"SECURITY_JWT_SECRET": "c2VjcmV0LWZvci10ZXN0cw==", "DB_PASSWORD": "pw-3f9a1c"})
    summary, aws, _ = rollout(with_backend(env_settings), "stepfunctions")
    events = aws.client("stepfunctions").get_execution_history(executionArn=summary["execution"], maxResults=1000)[
        "events"
    ]
    history = json.dumps(events, default=str)
    assert "TaskSucceeded" in history and "careconnect-backend" in history  # the consumer is in the plan
    assert "pw-3f9a1c" not in history and "c2VjcmV0LWZvci10ZXN0cw==" not in history
    assert "SECURITY_JWT_SECRET" not in history  # not even the names


def test_a_no_echo_value_is_refused_by_the_state_machine_engine(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    with_url = with_parameters(env_settings, "compute", DatabaseAuth="url", DatabaseUrl="postgresql://u:p@h/d")
    with pytest.raises(sfn_engine.NoEchoRefused, match="DatabaseUrl would appear in the execution history"):
        rollout(with_url, "stepfunctions")


def test_a_consumer_with_no_environment_gets_the_endpoint_and_the_notify_function(
    rollout: Run, env_settings: settings.EnvironmentSettings, engine_name: str, emulator: str
) -> None:
    backend_consumer(Aws(REGION, endpoint_url=emulator))
    env = with_backend(env_settings)
    summary, aws, _ = rollout(env, engine_name)
    variables = aws.client("lambda").get_function_configuration(FunctionName="careconnect-backend")["Environment"]
    account = aws.client("sts").get_caller_identity()["Account"]
    assert variables["Variables"] == {
        "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT": summary["management_endpoint"],
        "CC_WEBSOCKET_NOTIFY_FUNCTION": f"arn:aws:lambda:{REGION}:{account}:function:cc-websocket-notify:live",
    }


@pytest.mark.slow
def unsuffixed(runs: list[dict[str, dict[str, int]]]) -> list[dict[str, dict[str, int]]]:
    """Calls with CloudFormation's random suffix of a physical name left out (each engine's run
    starts from an empty account, so the account role is another role with the same name stem)."""
    return [
        {step: {re.sub(r"-[A-Z0-9]{12}$", "-*", c): n for c, n in calls.items()} for step, calls in run.items()}
        for run in runs
    ]


def test_both_orchestrators_make_the_same_calls(
    rollout: Run, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact, tmp_path: Any
) -> None:
    """Fresh, no-op, a changed parameter, changed code: the steps' calls (operation and target) are
    the same from a laptop and from the runner inside the state machine."""
    changed = tmp_path / built_artifact.path.name.replace(built_artifact.sha256[:20], "e" * 20)
    changed.write_bytes(built_artifact.path.read_bytes())
    new = package.Artifact(changed, "e" * 64, built_artifact.size, built_artifact.unzipped_size, built_artifact.target)
    faster = with_parameters(env_settings, "websocket", ThrottlingRateLimit="251")
    runs: list[tuple[settings.EnvironmentSettings, dict[str, Any]]] = [
        (env_settings, {}), (env_settings, {}), (faster, {}), (faster, {"build_package": lambda *_: new}),
    ]  # fmt: skip
    seen = {}
    for engine_name in ENGINES:
        seen[engine_name] = [step_calls(rollout(env, engine_name, **extra)[0]) for env, extra in runs]
        reset_emulator(rollout.emulator)
    local, inside = seen["local"], seen["stepfunctions"]
    assert unsuffixed(local[1:]) == unsuffixed(inside[1:])
    # A fresh run differs only in who passes the service role: the state machine's plan names the
    # rollout stack's role (the local plan none, before a rollout stack exists).
    assert {k: {c: n for c, n in v.items() if not c.startswith("iam:")} for k, v in local[0].items()} == {
        k: {c: n for c, n in v.items() if not c.startswith("iam:")} for k, v in inside[0].items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("order", [("local", "stepfunctions"), ("stepfunctions", "local")])
def test_switching_engines_works_both_ways(
    rollout: Run, env_settings: settings.EnvironmentSettings, order: tuple[str, str]
) -> None:
    first, then = order
    rollout(env_settings, first)
    if then == "local" or first == "local":
        summary, aws, _ = rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit="77"), then)
        assert actions(summary)["websocket"] == "updated"
    roles = {stack(name).role_arn for name in ("cc-websocket-compute", "cc-websocket-api")}
    rollout_stack = aws.client("cloudformation").describe_stacks(StackName="cc-websocket-rollout")["Stacks"][0]
    service_role = {o["OutputKey"]: o["OutputValue"] for o in rollout_stack["Outputs"]}["CloudFormationRoleArn"]
    # Once the environment has its rollout stack, both engines run every change set as its role,
    # with the code and templates in its bucket (the only one that role may read).
    assert roles == {service_role}
    bucket = {o["OutputKey"]: o["OutputValue"] for o in rollout_stack["Outputs"]}["ArtifactsBucketName"]
    assert stack("cc-websocket-compute").parameters["CodeS3Bucket"] == bucket


@pytest.mark.slow
@pytest.mark.parametrize("then", ENGINES)
def test_no_rollout_starts_beside_a_running_execution(
    rollout: Run, env_settings: settings.EnvironmentSettings, then: str
) -> None:
    """Either engine, while the environment's state machine runs an execution: refused before any
    change (the runner's code is not replaced under it, no stack is touched)."""
    rollout(env_settings, "stepfunctions")
    sessions: list[Aws] = []

    def one_still_running(aws: Aws) -> None:  # moto cannot hold an execution open: report one as running
        running = {"executions": [{"executionArn": "arn:aws:states:eu-west-1:123456789012:execution:x:y"}]}
        aws.client("stepfunctions").list_executions = lambda **_: running
        sessions.append(aws)

    with pytest.raises(Declined, match="is still running: wait for it to end"):
        rollout(
            with_parameters(env_settings, "websocket", ThrottlingRateLimit="78"), then, on_session=one_still_running
        )
    # nothing changed but the environment's lock, taken (before anything was read) and released
    assert [aws.counter.mutating for aws in sessions] == [{"s3:PutObject": 1, "s3:DeleteObject": 1}]


@pytest.mark.slow
def test_a_stack_bound_to_a_deleted_rollout_role_is_refused_with_what_to_do(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    """Deleting the rollout stack deletes the role CloudFormation keeps for both stacks: a local
    deploy would run as a role that no longer exists. It is refused before anything changes."""
    rollout(env_settings, "stepfunctions")
    cloudformation = Aws(REGION, endpoint_url=emulator).client("cloudformation")
    cloudformation.update_termination_protection(StackName="cc-websocket-rollout", EnableTerminationProtection=False)
    cloudformation.delete_stack(StackName="cc-websocket-rollout")
    with pytest.raises(PlanRefused, match=r"cc-websocket-compute is bound to the service role .*CloudFormationRole"):
        rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit="42"))
    summary, _, _ = rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit="42"), "stepfunctions")
    assert actions(summary)["websocket"] == "updated"  # a new rollout stack, its new role taken by both stacks


def _update_out_of_band(cf: Any, stack_name: str, **values: str) -> None:
    """What a console or CLI user does: the previous template, one parameter changed (each other
    value given as it is: moto's UsePreviousValue misses parameters left at their default)."""
    live = cf.describe_stacks(StackName=stack_name)["Stacks"][0]["Parameters"]
    cf.update_stack(
        StackName=stack_name,
        UsePreviousTemplate=True,
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[
            {"ParameterKey": p["ParameterKey"], "ParameterValue": values.get(p["ParameterKey"], p["ParameterValue"])}
            for p in live
        ],
    )


def test_a_change_made_out_of_band_is_seen_and_undone(
    rollout: Run, env_settings: settings.EnvironmentSettings, engine_name: str, emulator: str
) -> None:
    """The settings say one thing, AWS holds another (an update-stack and a hotfix by
    update-function-code, the rollout's tag untouched): the next deploy reads AWS and restores both."""
    first, aws, _ = rollout(env_settings, engine_name)
    cf, lambda_client = aws.client("cloudformation"), aws.client("lambda")
    api_id = first["management_endpoint"][8:].split(".")[0]
    (stage,) = aws.client("apigatewayv2").get_stages(ApiId=api_id)["Items"]
    planned = stage["DefaultRouteSettings"]["ThrottlingRateLimit"]
    _update_out_of_band(cf, "cc-websocket-api", ThrottlingRateLimit="7")
    running = lambda_client.get_function_configuration(FunctionName="cc-websocket-connect")["CodeSha256"]
    aws.client("s3").put_object(Bucket=env_settings.artifacts_bucket, Key="hotfix.zip", Body=HOTFIX)
    lambda_client.update_function_code(
        FunctionName="cc-websocket-connect", S3Bucket=env_settings.artifacts_bucket, S3Key="hotfix.zip"
    )
    summary, aws, log = rollout(env_settings, engine_name)
    assert actions(summary) == {"compute": "updated", "settle": "unchanged", "websocket": "updated",
                                "endpoint": "unchanged", "carry": "unchanged"}  # fmt: skip
    assert "ThrottlingRateLimit: live '7'" in log or engine_name == "stepfunctions"  # the runner logs inside AWS
    (stage,) = aws.client("apigatewayv2").get_stages(ApiId=api_id)["Items"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == planned
    connect = aws.client("lambda").get_function_configuration(FunctionName="cc-websocket-connect")
    assert connect["CodeSha256"] == running
    again, _, _ = rollout(env_settings, engine_name)
    assert set(actions(again).values()) == {"unchanged"}
