"""The options a real environment uses, rehearsed through the strict emulator on both engines:
VPC placement, customer managed keys, each database method, and an account that already has
its API Gateway CloudWatch role (someone else's, kept)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from generator.project import Project
from rollout import engine, package, settings, sfn_engine
from rollout.aws import Aws
from rollout.plan import PlanRefused
from rollout.preflight import rendered_templates
from rollout.rehearsal import expected, prepare_account, prove
from rollout.report import Reporter
from tests.rollout.conftest import with_parameters

TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}]}  # fmt: skip


def run(engine_name: str, emulator: str, env: settings.EnvironmentSettings,
        artifact: package.Artifact) -> tuple[dict[str, Any], Aws]:  # fmt: skip
    aws = Aws(env.region, endpoint_url=emulator)
    prepare_account(aws, env)
    options = engine.Options(poll_seconds=0, role_settle_seconds=0, build_package=lambda *_: artifact)
    runner = sfn_engine.run if engine_name == "stepfunctions" else engine.run
    return runner(env, aws, Reporter(io.StringIO()), options).to_dict(), aws


def vpc(aws: Aws) -> dict[str, str]:
    ec2 = aws.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.20.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    group = ec2.create_security_group(GroupName="ws", Description="ws", VpcId=vpc_id)["GroupId"]
    return {"SubnetIds": ",".join(subnets), "SecurityGroupIds": group}


def keys(aws: Aws) -> dict[str, str]:
    kms = aws.client("kms")
    return {"EnvironmentKmsKeyArn": kms.create_key()["KeyMetadata"]["Arn"],
            "LogsKmsKeyArn": kms.create_key()["KeyMetadata"]["Arn"]}  # fmt: skip


def secret(aws: Aws) -> dict[str, str]:
    arn = aws.client("secretsmanager").create_secret(Name="cc/db", SecretString=json.dumps(
        {"host": "db", "port": 5432, "dbname": "cc", "username": "u", "password": "p"}))["ARN"]  # fmt: skip
    jwt = aws.client("secretsmanager").create_secret(Name="cc/jwt", SecretString="c2VjcmV0LWtleQ==")["ARN"]
    return {"DatabaseAuth": "secret", "DatabaseSecretArn": arn, "JwtSecretArn": jwt}


OPTIONS: dict[str, Callable[[Aws], dict[str, str]]] = {"vpc": vpc, "keys": keys, "database secret": secret,
                                                         "database iam": lambda _aws: {}}  # fmt: skip


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_each_option_rolls_out_and_proves(emulator: str, env_settings: settings.EnvironmentSettings,
                                          built_artifact: package.Artifact, engine_name: str, option: str) -> None:  # fmt: skip
    values = OPTIONS[option](Aws(env_settings.region, endpoint_url=emulator))
    env = with_parameters(env_settings, "compute", **values)
    if option == "keys":
        env = with_parameters(env, "websocket", LogsKmsKeyArn=values["LogsKmsKeyArn"])
    summary, aws = run(engine_name, emulator, env, built_artifact)
    assert summary["result"] == "succeeded"
    prove(aws, summary["management_endpoint"], expected(aws, env, rendered_templates(Project.find())["compute"]))
    function = aws.client("lambda").get_function_configuration(FunctionName="cc-websocket-connect")
    if option == "vpc":
        assert sorted(function["VpcConfig"]["SubnetIds"]) == sorted(values["SubnetIds"].split(","))
    if option == "keys":  # the proof checked every function; this one by hand too
        assert function["KMSKeyArn"] == values["EnvironmentKmsKeyArn"]
    assert function["Architectures"] == ["arm64"]  # what the handlers zip was built for
    if option == "database secret":
        assert function["Environment"]["Variables"]["DATABASE_SECRET_ARN"] == values["DatabaseSecretArn"]


def test_the_url_method_rolls_out_locally_and_is_refused_by_step_functions(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    env = with_parameters(env_settings, "compute", DatabaseAuth="url", DatabaseUrl="postgresql://u:p@db:5432/cc")
    summary, _ = run("local", emulator, env, built_artifact)
    assert summary["result"] == "succeeded"
    with pytest.raises(sfn_engine.NoEchoRefused, match="DatabaseUrl"):
        run("stepfunctions", emulator, env, built_artifact)


def someone_elses_role(emulator: str) -> str:
    aws = Aws("eu-west-1", endpoint_url=emulator)
    role = aws.client("iam").create_role(RoleName="landing-zone-apigw-logs",
                                         AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]  # fmt: skip
    aws.client("apigateway").update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn",
                                                              "value": role}])  # fmt: skip
    return role


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_an_existing_account_role_is_kept(emulator: str, env_settings: settings.EnvironmentSettings,
                                          built_artifact: package.Artifact, engine_name: str) -> None:  # fmt: skip
    role = someone_elses_role(emulator)
    summary, aws = run(engine_name, emulator, env_settings, built_artifact)
    assert summary["result"] == "succeeded"
    assert aws.client("apigateway").get_account()["cloudwatchRoleArn"] == role
    for stack_name, parameter, value in (
        ("cc-websocket-compute", "CreateApiGatewayAccountRole", "false"),
        ("cc-websocket-api", "ApiGatewayCloudWatchRoleArn", ""),
    ):
        stack = aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
        assert {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack["Parameters"]}[parameter] == value


def test_a_fresh_account_gets_the_role_and_a_second_run_keeps_owning_it(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    _, aws = run("local", emulator, env_settings, built_artifact)
    role = aws.client("apigateway").get_account()["cloudwatchRoleArn"]
    assert ":role/cc-websocket-compute-ApiGatewayCloudWatchRole-" in role
    second, _ = run("local", emulator, env_settings, built_artifact)
    assert {s["stage"]: s["action"] for s in second["stages"]}["websocket"] == "unchanged"


def test_explicit_false_without_a_role_is_refused_before_any_change(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    env = with_parameters(env_settings, "compute", CreateApiGatewayAccountRole="false")
    with pytest.raises(PlanRefused, match="no API Gateway CloudWatch role"):
        run("local", emulator, env, built_artifact)
    aws = Aws(env.region, endpoint_url=emulator)
    assert aws.client("cloudformation").describe_stacks()["Stacks"] == []


def test_turning_the_account_role_off_keeps_the_role_the_account_names(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    _, aws = run("local", emulator, env_settings, built_artifact)
    role = aws.client("apigateway").get_account()["cloudwatchRoleArn"]
    off = with_parameters(env_settings, "compute", CreateApiGatewayAccountRole="false")
    summary, _ = run("local", emulator, off, built_artifact)
    assert summary["result"] == "succeeded"
    assert aws.client("iam").get_role(RoleName=role.rsplit("/", 1)[1])["Role"]["Arn"] == role
