"""The whole rollout, end to end, against the embedded emulator (moto server over HTTP)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from generator.model import ENDPOINT_VARIABLE
from generator.project import Project
from rollout import settings
from rollout.aws import Aws
from rollout.preflight import rendered_templates
from rollout.rehearsal import RehearsalFailed, expected, prove
from rollout.stacks import Declined
from tests.rollout.conftest import Run, with_parameters

FUNCTIONS = [
    "cc-websocket-connect",
    "cc-websocket-disconnect",
    "cc-websocket-default",
    "cc-websocket-cleanup",
    "cc-websocket-notify",
    "cc-websocket-migrate",
]


# What every run writes besides its changes: the environment's lock taken (a put) and released (a
# delete, rollout/lock.py), and the run's release record (a put, rollout/releases.py).
WRITES = {"s3:PutObject": 2, "s3:DeleteObject": 1}


def actions(summary: dict[str, Any]) -> dict[str, str]:
    return {stage["stage"]: stage["action"] for stage in summary["stages"]}


def variables(aws: Any, function: str) -> dict[str, str]:
    return aws.client("lambda").get_function_configuration(FunctionName=function)["Environment"]["Variables"]


def test_fresh_rollout_builds_everything_and_wires_the_endpoint(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    summary, aws, log = rollout(env_settings)
    assert summary["result"] == "succeeded"
    assert actions(summary) == {
        "compute": "created",
        "settle": "unchanged",
        "websocket": "created",
        "endpoint": "updated",
        "carry": "updated",
    }
    endpoint = summary["management_endpoint"]
    assert endpoint.startswith("https://") and endpoint.endswith(".execute-api.eu-west-1.amazonaws.com/prod")
    assert summary["websocket_url"] == endpoint.replace("https://", "wss://")
    proof = prove(
        aws, summary["management_endpoint"], expected(aws, env_settings, rendered_templates(Project.find())["compute"])
    )
    assert proof["routes"] == ["$connect", "$default", "$disconnect"] and proof["functions"] == sorted(FUNCTIONS)
    compute = aws.client("cloudformation").describe_stacks(StackName="cc-websocket-compute")["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in compute["Parameters"]}["ManagementEndpoint"] == endpoint
    assert "Add      Stage" in log and "CREATE_COMPLETE" in log  # change set shown, events streamed


def test_the_proof_names_a_function_on_another_architecture_key_or_log_group(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    summary, aws, _ = rollout(env_settings)
    deployed = expected(aws, env_settings, rendered_templates(Project.find())["compute"])
    assert deployed.architecture == "arm64" and deployed.kms_key == "" and deployed.functions == set(FUNCTIONS)
    with pytest.raises(
        RehearsalFailed, match=r"cc-websocket-connect runs on \['arm64'\], the handlers zip was built for x86_64"
    ):
        prove(aws, summary["management_endpoint"], replace(deployed, architecture="x86_64"))
    with pytest.raises(
        RehearsalFailed, match="cc-websocket-notify environment key is the default, expected arn:aws:kms:"
    ):
        prove(
            aws, summary["management_endpoint"], replace(deployed, kms_key="arn:aws:kms:eu-west-1:123456789012:key/k")
        )
    with pytest.raises(RehearsalFailed, match=r"functions \['cc-websocket-extra'\] do not exist"):
        prove(
            aws,
            summary["management_endpoint"],
            replace(deployed, functions=deployed.functions | {"cc-websocket-extra"}),
        )
    logs = aws.client("logs")
    logs.delete_retention_policy(logGroupName="/aws/lambda/cc-websocket-default")
    logs.delete_log_group(logGroupName="/aws/lambda/cc-websocket-connect")
    with pytest.raises(RehearsalFailed) as failed:
        prove(aws, summary["management_endpoint"], deployed)
    assert "cc-websocket-connect logs to /aws/lambda/cc-websocket-connect, which does not exist" in str(failed.value)
    assert "cc-websocket-default logs to /aws/lambda/cc-websocket-default, which has no retention" in str(failed.value)


def test_an_immediate_second_run_changes_nothing(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    rollout(env_settings)
    summary, aws, _ = rollout(env_settings)
    assert actions(summary) == {
        "compute": "unchanged",
        "settle": "unchanged",
        "websocket": "unchanged",
        "endpoint": "unchanged",
        "carry": "unchanged",
    }
    assert aws.counter.mutating == WRITES  # nothing written but the lock, taken and released, and the record
    assert aws.counter.total > 0


def test_log_groups_and_integrations_update_in_place_and_what_references_them_holds(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    """A log group (which moto cannot update) and the integrations (which CloudFormation updates in
    place) change, while the role and the routes that reference them stay valid."""
    first, aws, _ = rollout(env_settings)
    api_id = first["management_endpoint"][8:].split(".")[0]
    apigw = aws.client("apigatewayv2")
    before = {i["IntegrationId"] for i in apigw.get_integrations(ApiId=api_id)["Items"]}
    changed = with_parameters(env_settings, "compute", LogRetentionInDays="90", MemorySize="512")
    changed = with_parameters(changed, "websocket", IntegrationTimeoutMillis="10000")
    summary, aws, _ = rollout(changed)
    assert actions(summary)["compute"] == "updated" and actions(summary)["websocket"] == "updated"
    (websocket,) = [s for s in summary["stages"] if s["stage"] == "websocket"]
    assert {c["resource"] for c in websocket["changes"]} >= {"ConnectIntegration", "DefaultIntegration"}
    integrations = apigw.get_integrations(ApiId=api_id)["Items"]
    assert {i["IntegrationId"] for i in integrations} == before  # same ids: the routes' targets hold
    assert {i["TimeoutInMillis"] for i in integrations} == {10000}
    group = aws.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/cc-websocket-connect")
    assert group["logGroups"][0]["retentionInDays"] == 90
    connect = aws.client("lambda").get_function_configuration(FunctionName="cc-websocket-connect")
    assert connect["MemorySize"] == 512 and connect["LoggingConfig"]["LogGroup"] == "/aws/lambda/cc-websocket-connect"
    prove(aws, summary["management_endpoint"], expected(aws, changed, rendered_templates(Project.find())["compute"]))


def test_pre_existing_environment_variables_survive(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    summary, aws, _ = rollout(env_settings)
    lam = aws.client("lambda")
    before = variables(aws, "cc-websocket-default")
    lam.update_function_configuration(FunctionName="cc-websocket-default", Environment={"Variables": {
        **{k: str(v) for k, v in before.items()}, "FEATURE_FLAG": "on", ENDPOINT_VARIABLE: "https://stale/prod"}})  # fmt: skip
    summary, aws, log = rollout(env_settings)
    after = variables(aws, "cc-websocket-default")
    assert after[ENDPOINT_VARIABLE] == summary["management_endpoint"]
    assert after["FEATURE_FLAG"] == "on"
    # ... and the engineer was told, before anything ran, that a compute update would remove it.
    assert "WARNING cc-websocket-default carries FEATURE_FLAG, which the template does not set" in log
    assert {k: str(v) for k, v in after.items() if k not in (ENDPOINT_VARIABLE,)} == {
        **{k: str(v) for k, v in before.items() if k != ENDPOINT_VARIABLE}, "FEATURE_FLAG": "on"}  # fmt: skip
    assert aws.counter.mutating == {"lambda:UpdateFunctionConfiguration": 1, **WRITES}


def test_dry_run_shows_the_plan_and_changes_nothing(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    summary, aws, log = rollout(env_settings, dry_run=True)
    assert summary["result"] == "planned"
    assert actions(summary) == {
        "compute": "planned",
        "settle": "planned",
        "websocket": "planned",
        "endpoint": "planned",
        "carry": "planned",
    }
    assert "Add      ConnectFunction" in log  # the compute stack's change set, shown and discarded
    # The websocket stack's inputs are outputs of a compute stack that does not exist yet: it is
    # planned after it (its change set needs the functions' ARNs), and the plan says so.
    assert re.search(r"cc-websocket-api: planned once .*compute\.ConnectAliasArn", log)
    assert aws.client("cloudformation").describe_stacks()["Stacks"] == []
    # Change sets are planned from S3, so the templates (content-hash keys) are uploaded; the
    # handlers zip is not.
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=env_settings.artifacts_bucket)["Contents"]]
    assert keys and all(key.startswith("templates/") for key in keys)
    assert set(aws.counter.mutating) <= {"cloudformation:CreateChangeSet", "cloudformation:DeleteChangeSet",
                                         "cloudformation:DeleteStack", "s3:PutObject", "s3:DeleteObject"}  # fmt: skip


def test_throttling_is_retried(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    throttled: list[str] = []

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        if len(throttled) < 3:
            throttled.append("x")
            body = (b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                    b"<Message>Rate exceeded</Message></Error></ErrorResponse>")  # fmt: skip
            return AWSResponse(request.url, 400, {}, _Raw(body))
        return None

    def with_throttling(aws: Aws) -> None:
        aws.events.register("before-send.cloudformation.DescribeStacks", throttle)

    summary, _, _ = rollout(env_settings, on_session=with_throttling)
    assert summary["result"] == "succeeded" and len(throttled) == 3


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body

    def read(self) -> bytes:
        return self.body


def test_a_name_prefix_change_is_asked_about_before_anything_changes(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    rollout(env_settings)
    renamed = with_parameters(env_settings, "compute", NamePrefix="staging")
    questions: list[str] = []
    with pytest.raises(Declined, match="NamePrefix left at cc"):
        rollout(renamed, confirm=lambda q: questions.append(q) or "NamePrefix" not in q)
    assert questions == ["cc-websocket-compute: NamePrefix changes from cc to staging: every named resource is "
                         "replaced and the log groups of cc-websocket-* are deleted with their logs. Go on?"]  # fmt: skip
