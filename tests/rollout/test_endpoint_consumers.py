"""Endpoint consumers: the backend's own functions, created outside our stacks, get the endpoint
and the management-API grant (this API and stage only), on both engines, through the emulator."""

from __future__ import annotations

import io
import json
import zipfile
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from rollout import engine, package, settings, sfn_engine
from rollout.aws import Aws
from rollout.preflight import PreflightFailed
from rollout.prepare import find_consumers
from rollout.rehearsal import prepare_account
from rollout.report import Reporter

ENDPOINT_VARIABLE = "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}  # fmt: skip
OWN_VARIABLES = {"SPRING_PROFILES_ACTIVE": "prod", "SECURITY_JWT_SECRET_ARN": "arn:aws:secretsmanager:x"}


def with_consumers(env: settings.EnvironmentSettings, *consumers: str) -> settings.EnvironmentSettings:
    raw = {"region": env.region, "artifacts_bucket": env.artifacts_bucket, "stacks": env.stacks,
           "parameters": env.parameters, "endpoint_consumers": list(consumers), "migrate": env.migrate}  # fmt: skip
    return settings.validate(env.name, env.path, raw)


def backend_function(aws: Aws, env: settings.EnvironmentSettings, name: str = "careconnect-backend",
                     role_arn: str | None = None) -> str:  # fmt: skip
    """A function deployed by the backend's own stack: its role, its code, its variables."""
    prepare_account(aws, env)
    if role_arn is None:
        role_arn = aws.client("iam").create_role(RoleName=f"{name}-role",
                                                 AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    aws.client("s3").put_object(Bucket=env.artifacts_bucket, Key=f"{name}.zip", Body=buffer.getvalue())
    created = aws.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Handler="app.handler", Role=role_arn,
        Code={"S3Bucket": env.artifacts_bucket, "S3Key": f"{name}.zip"},
        Environment={"Variables": OWN_VARIABLES},
    )  # fmt: skip
    return str(created["FunctionArn"])


def run(engine_name: str, aws: Aws, env: settings.EnvironmentSettings, artifact: package.Artifact) -> dict[str, Any]:
    prepare_account(aws, env)
    options = engine.Options(poll_seconds=0, role_settle_seconds=0, build_package=lambda *_: artifact)
    runner = sfn_engine.run if engine_name == "stepfunctions" else engine.run
    return runner(env, aws, Reporter(io.StringIO()), options).to_dict()


def notify_alias(aws: Aws, region: str) -> str:
    """The notify function's live alias: what the backend may invoke (the policy names only it)."""
    account = aws.client("sts").get_caller_identity()["Account"]
    return f"arn:aws:lambda:{region}:{account}:function:cc-websocket-notify:live"


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_a_consumer_gets_the_endpoint_keeps_its_variables_and_the_grant_names_only_this_stage(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact, engine_name: str
) -> None:
    aws = Aws(env_settings.region, endpoint_url=emulator)
    arn = backend_function(aws, env_settings)
    env = with_consumers(env_settings, arn)
    first = run(engine_name, aws, env, built_artifact)
    variables = aws.client("lambda").get_function_configuration(FunctionName="careconnect-backend")["Environment"][
        "Variables"
    ]
    # The backend learns the endpoint and the function its pushes go through (handlers/notify.py).
    assert variables == {**OWN_VARIABLES, ENDPOINT_VARIABLE: first["management_endpoint"],
                         "CC_WEBSOCKET_NOTIFY_FUNCTION": notify_alias(aws, env_settings.region)}  # fmt: skip
    policy = aws.client("iam").get_role_policy(RoleName="careconnect-backend-role",
                                               PolicyName="cc-websocket-manage-connections")["PolicyDocument"]  # fmt: skip
    api_id = first["management_endpoint"].split("//")[1].split(".")[0]
    (statement,) = (json.loads(policy) if isinstance(policy, str) else policy)["Statement"]
    assert statement["Action"] in ("execute-api:ManageConnections", ["execute-api:ManageConnections"])
    assert sorted(statement["Resource"]) == sorted(
        f"arn:aws:execute-api:eu-west-1:123456789012:{api_id}/prod/{method}/@connections/*"
        for method in ("POST", "GET", "DELETE")
    )
    aws.counter.calls.clear()
    second = run(engine_name, aws, env, built_artifact)
    assert second["result"] == "succeeded"
    if engine_name == "local":
        assert "lambda:UpdateFunctionConfiguration" not in aws.counter.mutating
    else:
        assert "updateFunctionConfiguration" not in second["state_machine_calls"]


def test_an_unknown_consumer_is_refused_by_name_before_any_change(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    aws = Aws(env_settings.region, endpoint_url=emulator)
    env = with_consumers(env_settings, "no-such-function")
    with pytest.raises(PreflightFailed, match="endpoint consumer no-such-function does not exist"):
        run("local", aws, env, built_artifact)
    assert aws.client("cloudformation").describe_stacks()["Stacks"] == []


def test_a_consumer_running_as_another_accounts_role_is_refused() -> None:
    """moto refuses to create such a function at all (cross-account PassRole), so the answer
    AWS gives for a function another team deployed that way comes from botocore's Stubber."""
    client = boto3.client("lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_response("get_function_configuration", {
        "FunctionName": "elsewhere", "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:elsewhere",
        "Role": "arn:aws:iam::999999999999:role/their-role"}, {"FunctionName": "elsewhere"})  # fmt: skip
    aws = SimpleNamespace(region="eu-west-1", client=lambda _service: client)
    with stub, pytest.raises(PreflightFailed, match="a role of account 999999999999"):
        find_consumers(aws, ("elsewhere",), "123456789012")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "problem"), [
    (["not a function!"], r"endpoint_consumers\[0\]: 'not a function!' is not a Lambda function name or ARN"),
    ([{"name": "x"}], r"endpoint_consumers\[0\]: .* is not a Lambda function name or ARN"),
    (["a", "a"], "lists a function twice"),
    ([f"f{i}" for i in range(11)], "at most 10 are served"),
])  # fmt: skip
def test_bad_consumer_settings_are_named(env_settings: settings.EnvironmentSettings, value: Any, problem: str) -> None:
    raw = {"region": env_settings.region, "artifacts_bucket": env_settings.artifacts_bucket,
           "stacks": env_settings.stacks, "parameters": env_settings.parameters, "endpoint_consumers": value}  # fmt: skip
    with pytest.raises(settings.SettingsError, match=problem):
        settings.validate("t", env_settings.path, raw)
