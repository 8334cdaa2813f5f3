"""The compute template: functions, environment, database methods, VPC, logs and a tight role."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import cfnlint
import pytest

from cfnlint_websocket.limits import RULE_FUNCTIONS
from gates import iam_eval
from gates.iam_eval import Request
from generator.intrinsics import Evaluator, failed_rules
from generator.model import ENDPOINT_VARIABLE, HANDLER_FUNCTIONS, LAMBDA_RUNTIME

FUNCTIONS = {
    "Connect": "connect",
    "Disconnect": "disconnect",
    "Default": "default",
    "Cleanup": "cleanup",
    "Notify": "notify",
}
ROUTE_FUNCTIONS = ("Connect", "Disconnect", "Default")
CODE = {"CodeS3Bucket": "artifacts-bucket", "CodeS3Key": "handlers/abc123.zip"}
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/db-AbCdEf"
IAM_DB = {"DatabaseAuth": "iam", "DatabaseHost": "db.example.internal", "DatabaseUser": "ws_app",
          "DatabaseResourceId": "db-ABCDEFGH"}  # fmt: skip


@pytest.fixture
def compute(templates: dict[str, Any]) -> dict[str, Any]:
    return templates["compute"]


def resolved(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """Resources as CloudFormation would create them for these parameters."""
    ev = Evaluator(template, {**CODE, **parameters})
    return {
        name: ev.eval(res)
        for name, res in template["Resources"].items()
        if "Condition" not in res or ev.condition(res["Condition"])
    }


def test_functions_with_original_names_and_handlers(compute: dict[str, Any]) -> None:
    resources = resolved(compute)
    for stem, suffix in FUNCTIONS.items():
        props = resources[f"{stem}Function"]["Properties"]
        assert props["FunctionName"] == f"cc-websocket-{suffix}"
        assert props["Handler"] == f"handlers.{suffix}.handler"
        assert props["Runtime"] == LAMBDA_RUNTIME
        assert props["Architectures"] == ["arm64"]
        assert props["Code"] == {"S3Bucket": "artifacts-bucket", "S3Key": "handlers/abc123.zip"}
        assert props["Timeout"] == ("29" if stem in ROUTE_FUNCTIONS else "60")  # cleanup, notify: their own
        assert props["MemorySize"] == "256"
        assert props["LoggingConfig"]["LogGroup"] == f"{stem}LogGroup-id"
        assert "VpcConfig" not in props and "KmsKeyArn" not in props
    assert compute["Parameters"]["Architecture"]["AllowedValues"] == ["arm64", "x86_64"]
    assert compute["Parameters"]["Timeout"]["MaxValue"] == 29


def test_runtime_is_the_newest_python_cfn_lint_knows_as_current() -> None:
    lifecycle_file = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "LmbdRuntimeLifecycle.json"
    lifecycle = json.loads(lifecycle_file.read_text())
    pythons = sorted(
        (name for name in lifecycle if name.startswith("python3.")),
        key=lambda name: int(name.removeprefix("python3.")),
    )
    assert pythons[-1] == LAMBDA_RUNTIME
    assert (
        "deprecated" not in lifecycle[LAMBDA_RUNTIME]
        or lifecycle[LAMBDA_RUNTIME]["deprecated"] > date.today().isoformat()
    )


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"DatabaseUrl": "postgresql://db/cc"}, {"DATABASE_AUTH": "url", "DATABASE_URL": "postgresql://db/cc"}),
        ({"DatabaseAuth": "secret", "DatabaseSecretArn": SECRET},
         {"DATABASE_AUTH": "secret", "DATABASE_SECRET_ARN": SECRET, "DATABASE_PROXY_HOST": ""}),
        (IAM_DB, {"DATABASE_AUTH": "iam", "DATABASE_HOST": "db.example.internal", "DATABASE_PORT": "5432",
                  "DATABASE_NAME": "careconnect", "DATABASE_USER": "ws_app"}),
    ],
)  # fmt: skip
def test_environment_carries_only_the_chosen_database_method(
    compute: dict[str, Any], parameters: dict[str, str], expected: dict[str, str]
) -> None:
    env = resolved(compute, **parameters)["ConnectFunction"]["Properties"]["Environment"]["Variables"]
    common = ("DATABASE_SSLMODE", "DATABASE_STATEMENT_TIMEOUT_MS")
    database = {k: v for k, v in env.items() if k.startswith("DATABASE_") and k not in common}
    assert database == expected
    assert env["DATABASE_STATEMENT_TIMEOUT_MS"] == "5000"
    assert env[ENDPOINT_VARIABLE] == ""
    assert env["CONNECTION_TTL_MINUTES"] == "120"
    assert env["DATABASE_SSLMODE"] == "require"


def test_endpoint_parameter_feeds_every_function(compute: dict[str, Any]) -> None:
    endpoint = "https://a1b2c3.execute-api.eu-west-1.amazonaws.com/prod"
    resources = resolved(compute, ManagementEndpoint=endpoint)
    for stem in FUNCTIONS:
        assert resources[f"{stem}Function"]["Properties"]["Environment"]["Variables"][ENDPOINT_VARIABLE] == endpoint


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "DatabaseAuth=url needs DatabaseUrl"),
        ({"DatabaseAuth": "secret"}, "DatabaseAuth=secret needs DatabaseSecretArn"),
        ({"DatabaseAuth": "iam", "DatabaseHost": "h"}, "DatabaseAuth=iam needs DatabaseUser"),
        (
            {"DatabaseUrl": "postgresql://db/cc", "SubnetIds": "subnet-1a"},
            "SubnetIds needs SecurityGroupIds",
        ),
    ],
)
def test_rules_refuse_incomplete_settings_before_any_change(
    compute: dict[str, Any], parameters: dict[str, str], message: str
) -> None:
    assert message in failed_rules(compute, {**CODE, **parameters})


def test_complete_settings_pass_every_rule(compute: dict[str, Any]) -> None:
    for parameters in ({"DatabaseUrl": "postgresql://db/cc"}, IAM_DB,
                       {"DatabaseAuth": "secret", "DatabaseSecretArn": SECRET}):  # fmt: skip
        assert failed_rules(compute, {**CODE, **parameters}) == [], parameters


def test_vpc_placement_is_optional_and_brings_only_eni_access(compute: dict[str, Any]) -> None:
    plain = resolved(compute)
    assert "ManagedPolicyArns" not in plain["HandlersRole"]["Properties"]
    placed = resolved(compute, SubnetIds="subnet-1a,subnet-2b", SecurityGroupIds="sg-0f")
    assert placed["DefaultFunction"]["Properties"]["VpcConfig"] == {
        "SubnetIds": ["subnet-1a", "subnet-2b"], "SecurityGroupIds": ["sg-0f"]}  # fmt: skip
    assert placed["HandlersRole"]["Properties"]["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaENIManagementAccess"
    ]


def test_one_log_group_per_function_with_retention(compute: dict[str, Any]) -> None:
    resources = resolved(compute, LogRetentionInDays="14")
    for stem, suffix in FUNCTIONS.items():
        props = resources[f"{stem}LogGroup"]["Properties"]
        assert props["LogGroupName"] == f"/aws/lambda/cc-websocket-{suffix}"
        assert props["RetentionInDays"] == "14"


def statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    role = resources["HandlersRole"]["Properties"]
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_role_writes_only_its_own_log_groups_and_nothing_else_by_default(
    compute: dict[str, Any],
) -> None:
    resources = resolved(compute)
    assert resources["HandlersRole"]["Properties"]["RoleName"] == "cc-websocket-handlers"
    (logs,) = statements(resources)
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert sorted(logs["Resource"]) == sorted(f"{stem}LogGroup-id.Arn" for stem in FUNCTIONS)


def test_role_reads_only_the_given_secret(compute: dict[str, Any]) -> None:
    granted = statements(resolved(compute, DatabaseAuth="secret", DatabaseSecretArn=SECRET))
    secret = [s for s in granted if s["Action"] == ["secretsmanager:GetSecretValue"]]
    assert secret == [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                       "Resource": [SECRET, f"{SECRET}-??????"]}]  # fmt: skip


FULL = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/db-AbCdEf"
DECRYPT_CONTEXT = {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com", "kms:EncryptionContext:SecretARN": FULL}
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize("given", [FULL, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/db"])
@pytest.mark.parametrize(("action", "resource", "context", "expected"), [
    ("secretsmanager:GetSecretValue", FULL, {}, True),
    ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/other-AbCdEf", {}, False),
    ("kms:Decrypt", KEY, DECRYPT_CONTEXT, True),  # a secret under a customer managed key
    ("kms:Decrypt", KEY, {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}, False),  # another secret's
    ("kms:Decrypt", KEY, {**DECRYPT_CONTEXT, "kms:ViaService": "s3.eu-west-1.amazonaws.com"}, False),
])  # fmt: skip
def test_the_secret_is_readable_by_full_or_partial_arn_under_any_key(
    compute: dict[str, Any], given: str, action: str, resource: str, context: dict[str, str], expected: bool
) -> None:
    """Decided as IAM decides (gates.iam_eval): Secrets Manager appends -XXXXXX to every
    secret's ARN, and reads a secret under a customer managed key with the caller's kms:Decrypt."""
    documents = [{"Statement": statements(resolved(compute, DatabaseAuth="secret", DatabaseSecretArn=given))}]
    assert iam_eval.allowed(documents, Request(action, resource, context)) is expected


def test_role_connects_only_as_the_given_db_user(compute: dict[str, Any]) -> None:
    granted = statements(resolved(compute, **IAM_DB))
    (connect,) = [s for s in granted if s["Action"] == ["rds-db:connect"]]
    assert connect["Resource"] == ["arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABCDEFGH/ws_app"]


@pytest.mark.parametrize("parameters", [{}, {"DatabaseAuth": "secret", "DatabaseSecretArn": SECRET}, IAM_DB])
def test_role_has_no_wildcards_and_no_management_api(compute: dict[str, Any], parameters: dict[str, str]) -> None:
    text = json.dumps(statements(resolved(compute, **parameters)))
    assert "execute-api" not in text
    assert '"*"' not in text and ":*" not in text.replace(".Arn", "")


def test_outputs_feed_the_websocket_stack(templates: dict[str, Any]) -> None:
    compute, websocket = templates["compute"], templates["websocket"]
    outputs = set(compute["Outputs"])
    assert {"HandlersRoleName", "HandlersRoleArn"} <= outputs
    for stem in FUNCTIONS:
        assert {f"{stem}FunctionArn", f"{stem}FunctionName"} <= outputs
    # Every websocket parameter that names a compute output exists under the same key.
    assert {p for p in websocket["Parameters"] if p in outputs} == {
        "ConnectFunctionArn", "DisconnectFunctionArn", "DefaultFunctionArn", "HandlersRoleName", "AlarmTopicArn",
        "ApiGatewayCloudWatchRoleArn"}  # fmt: skip


def test_the_account_logging_role_is_optional_retained_and_its_arn_an_output(compute: dict[str, Any]) -> None:
    role = compute["Resources"]["ApiGatewayCloudWatchRole"]
    assert role["Condition"] == "CreateAccountRole"
    assert role["DeletionPolicy"] == role["UpdateReplacePolicy"] == "Retain"
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    assert "apigateway.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    output = compute["Outputs"]["ApiGatewayCloudWatchRoleArn"]["Value"]
    role_arn = "arn:aws:iam::123456789012:role/r"
    assert Evaluator(compute, CODE, attributes={"ApiGatewayCloudWatchRole.Arn": role_arn}).eval(output) == role_arn
    assert Evaluator(compute, {**CODE, "CreateApiGatewayAccountRole": "false"}).eval(output) == ""


def test_cleanup_runs_hourly_by_default_and_only_events_may_invoke_it(
    compute: dict[str, Any],
) -> None:
    resources = resolved(compute)
    (rule,) = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    assert rule["Properties"]["Targets"] == [{"Arn": "CleanupAlias-id", "Id": "cleanup"}]  # the live alias's ARN
    (permission,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert permission == {"Action": "lambda:InvokeFunction", "FunctionName": "CleanupAlias-id",
                          "Principal": "events.amazonaws.com", "SourceArn": "CleanupScheduleRule-id.Arn"}  # fmt: skip
    assert resources["CleanupFunction"]["Properties"]["Handler"] == "handlers.cleanup.handler"


def test_jwt_settings_reach_the_functions_and_the_secret_is_readable(
    compute: dict[str, Any],
) -> None:
    jwt_secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/jwt-XyZ123"
    resources = resolved(compute, DatabaseUrl="postgresql://db/cc", JwtSecretArn=jwt_secret, JwtIssuer="careconnect")
    env = resources["DefaultFunction"]["Properties"]["Environment"]["Variables"]
    assert (env["JWT_SECRET_ARN"], env["JWT_ISSUER"], env["JWT_PUBLIC_KEY"]) == (
        jwt_secret,
        "careconnect",
        "",
    )
    readable = [s["Resource"] for s in statements(resources) if s["Action"] == ["secretsmanager:GetSecretValue"]]
    assert readable == [[jwt_secret, f"{jwt_secret}-??????"]]
    both = {**CODE, "DatabaseUrl": "postgresql://db/cc", "JwtSecretArn": jwt_secret,
            "JwtPublicKey": "-----BEGIN PUBLIC KEY-----\\nAB\\n-----END PUBLIC KEY-----"}  # fmt: skip
    assert failed_rules(compute, both) == ["set JwtSecretArn or JwtPublicKey, not both"]


def functions_in(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*map(functions_in, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    return {k for k in node if k.startswith("Fn::") or k == "Ref"}.union(*map(functions_in, node.values()))


def test_rules_use_only_functions_cloudformation_accepts_in_rules(
    templates: dict[str, Any],
) -> None:
    for name, template in templates.items():
        for rule_name, rule in template.get("Rules", {}).items():
            assert functions_in(rule) <= RULE_FUNCTIONS, (name, rule_name)


def test_the_evaluator_refuses_functions_it_does_not_implement(compute: dict[str, Any]) -> None:
    with pytest.raises(NotImplementedError, match="Fn::GetAZs"):
        Evaluator(compute, CODE).eval({"Fn::Not": [{"Fn::GetAZs": ""}]})


def max_length(parameter: dict[str, Any]) -> int:
    """The longest value a parameter admits, from its own constraints."""
    if "AllowedValues" in parameter:
        return max(len(str(v)) for v in parameter["AllowedValues"])
    if parameter["Type"] == "Number":
        return len(str(parameter["MaxValue"]))
    return int(parameter["MaxLength"])


@pytest.mark.parametrize("method", ["url", "secret", "iam"])
def test_the_largest_environment_fits_lambdas_4_kb(compute: dict[str, Any], method: str) -> None:
    """Lambda measures names and values as compact JSON; every variable at its longest allowed
    value, for each database method, stays within 4,096 bytes."""
    (function, *_) = [r for r in compute["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    environment = function["Properties"]["Environment"]["Variables"]
    used = {ref for ref in re.findall(r'"Ref": "(\w+)"', json.dumps(environment)) if ref in compute["Parameters"]}
    longest = {name: "x" * max_length(compute["Parameters"][name]) for name in used if name != "DatabaseAuth"}
    variables = Evaluator(compute, {**CODE, **longest, "DatabaseAuth": method}).eval(environment)
    assert len(json.dumps(variables, separators=(",", ":")).encode()) <= 4096


def test_notify_function_and_the_policy_the_backend_attaches(compute: dict[str, Any]) -> None:
    resources = resolved(compute)
    function = resources["NotifyFunction"]["Properties"]
    assert (function["FunctionName"], function["Handler"]) == (
        "cc-websocket-notify",
        "handlers.notify.handler",
    )
    assert (
        function["Timeout"] == "60"
        and function["Environment"] == resources["ConnectFunction"]["Properties"]["Environment"]
    )
    policy = resources["NotifyInvokePolicy"]["Properties"]
    assert policy["ManagedPolicyName"] == "cc-websocket-notify-invoke"
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": ["NotifyAlias-id"]}]  # fmt: skip
    assert not {"Roles", "Users", "Groups"} & set(policy)  # the backend's stack attaches it
    assert {"NotifyFunctionArn", "NotifyInvokePolicyArn"} <= set(compute["Outputs"])


IAM_DB_VALUES = {"DatabaseAuth": "iam", "DatabaseHost": "db.example.internal", "DatabaseUser": "ws_app",
                 "DatabaseResourceId": "db-ABCDEFGH"}  # fmt: skip


@pytest.mark.parametrize("values", [
    {"DatabaseAuth": "url", "DatabaseUrl": "jdbc:postgresql://db:5432/cc?user=u&password=p"},
    {"DatabaseAuth": "secret", "DatabaseSecretArn": SECRET, "JwtSecretArn": SECRET},
    IAM_DB_VALUES,
])  # fmt: skip
def test_the_environment_the_template_sets_loads_in_the_handlers(
    compute: dict[str, Any], values: dict[str, str]
) -> None:
    """The contract between generator/compute.py and handlers/settings.py, per database method."""
    from handlers.settings import load

    variables = resolved(compute, **values)["ConnectFunction"]["Properties"]["Environment"]["Variables"]
    settings = load({name: str(value) for name, value in variables.items()})
    assert settings.database.auth == values["DatabaseAuth"]
    assert settings.jwt.issuer == "careconnect" and settings.ttl_minutes == 120


def test_the_vpc_advice_is_nat_not_an_interface_endpoint(compute: dict[str, Any]) -> None:
    """An execute-api interface endpoint serves private APIs only; the management API is public."""
    text = compute["Parameters"]["SubnetIds"]["Description"]
    assert "NAT gateway" in text and "private APIs only" in text
    assert "or an execute-api interface endpoint." not in text


OWNER_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/db-owner-XyZ123"


def _policies(resources: dict[str, Any], role: str) -> dict[str, list[Any]]:
    """Policy name -> resources its statements name, for one role."""
    return {p["PolicyName"]: [r for s in p["PolicyDocument"]["Statement"] for r in s["Resource"]]
            for p in resources[role]["Properties"]["Policies"]}  # fmt: skip


@pytest.mark.parametrize(
    ("parameters", "owner_variable", "owner_value"),
    [
        ({"DatabaseUrl": "postgresql://ws@db/cc", "MigrationDatabaseUrl": "postgresql://owner@db/cc"},
         "MIGRATION_DATABASE_URL", "postgresql://owner@db/cc"),
        ({"DatabaseAuth": "secret", "DatabaseSecretArn": SECRET, "MigrationDatabaseSecretArn": OWNER_SECRET},
         "MIGRATION_DATABASE_SECRET_ARN", OWNER_SECRET),
        ({**IAM_DB, "MigrationDatabaseUser": "ws_owner"}, "MIGRATION_DATABASE_USER", "ws_owner"),
    ],
)  # fmt: skip
def test_the_migrate_function_connects_as_the_owner_with_a_role_of_its_own(
    compute: dict[str, Any], parameters: dict[str, str], owner_variable: str, owner_value: str
) -> None:
    """The release step (handlers.migrate) may change the schema; the handlers may not: only its
    role reads the owner's secret or connects as the owner, and it gets no JWT key."""
    jwt = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cc/jwt-AbC123"
    resources = resolved(compute, **parameters, JwtSecretArn=jwt)
    props = resources["MigrateFunction"]["Properties"]
    assert (props["FunctionName"], props["Handler"], props["Timeout"]) == (
        "cc-websocket-migrate", "handlers.migrate.handler", "90")  # fmt: skip
    assert props["Role"] == "MigrateRole-id.Arn" and resources["ConnectFunction"]["Properties"]["Role"] == (
        "HandlersRole-id.Arn")  # fmt: skip
    env = props["Environment"]["Variables"]
    assert env[owner_variable] == owner_value
    assert not any(
        k.startswith("MIGRATION_") for k in resources["ConnectFunction"]["Properties"]["Environment"]["Variables"]
    )
    migrate, handlers = _policies(resources, "MigrateRole"), _policies(resources, "HandlersRole")
    assert resources["MigrateRole"]["Properties"]["RoleName"] == "cc-websocket-migrate"
    assert migrate["logs"] == ["MigrateLogGroup-id.Arn"] and "MigrateLogGroup-id.Arn" not in handlers["logs"]
    assert handlers["jwt-secret"][:2] == [jwt, f"{jwt}-??????"] and "jwt-secret" not in migrate
    owner_grant = {"MIGRATION_DATABASE_SECRET_ARN": [OWNER_SECRET, f"{OWNER_SECRET}-??????"],
                   "MIGRATION_DATABASE_USER": ["arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABCDEFGH/ws_owner"]}  # fmt: skip
    if owner_variable in owner_grant:
        policy = "database-secret" if "SECRET" in owner_variable else "database-iam-auth"
        expected = owner_grant[owner_variable]
        assert migrate[policy][: len(expected)] == expected  # (then kms:Decrypt through Secrets Manager)
        assert owner_grant[owner_variable][0] not in handlers[policy]


def test_the_longest_migration_is_answered_within_one_runner_invocation_and_one_read(
    compute: dict[str, Any], templates: dict[str, Any]
) -> None:
    """The rollout waits for the migrate function's reply: a migration that outlived the runner or
    the client's read would be invoked again while it still runs."""
    from rollout.aws import READ_TIMEOUT_SECONDS

    longest = compute["Parameters"]["MigrateTimeout"]["MaxValue"]
    runner = templates["rollout"]["Resources"]["RunnerFunction"]["Properties"]["Timeout"]
    assert longest + 5 <= runner and longest < READ_TIMEOUT_SECONDS


def test_every_function_publishes_a_version_per_code_or_configuration_and_a_live_alias_follows(
    compute: dict[str, Any],
) -> None:
    sha = "A" * 43 + "="
    resources = resolved(compute, CodeSha256=sha, ConfigurationDigest="ab" * 32)
    for function in HANDLER_FUNCTIONS:
        version = compute["Resources"][f"{function.logical}Version"]
        assert version["UpdateReplacePolicy"] == "Retain"  # kept for a rollback and a weighted shift
        props = resources[f"{function.logical}Version"]["Properties"]
        assert props["FunctionName"] == f"{function.logical}Function-id"
        assert props["CodeSha256"] == sha and props["Description"] == "release " + "ab" * 32
        alias = resources[f"{function.logical}Alias"]["Properties"]
        assert (alias["Name"], alias["FunctionVersion"]) == ("live", f"{function.logical}Version-id.Version")
        assert compute["Outputs"][f"{function.logical}AliasArn"]["Value"] == {"Ref": f"{function.logical}Alias"}
    assert "CodeSha256" not in resolved(compute)["ConnectVersion"]["Properties"]  # empty: no check
