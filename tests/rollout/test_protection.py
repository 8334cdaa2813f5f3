"""Protection (rollout/protection.py), through the emulator on both engines: termination protection
on every stack, the websocket stack's policy, a plan that replaces resources refused unless the
run names --allow-replacement (the policy lifted for that update and restored), the dry run's URL,
and --yes printing every question it answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout import cli, protection, settings, steps
from rollout.aws import Aws
from rollout.status import lines, read
from tests.rollout.conftest import Run, with_parameters

REGION = "eu-west-1"
STACKS = ("cc-websocket-compute", "cc-websocket-api")


@pytest.fixture(params=["local", pytest.param("stepfunctions", marks=pytest.mark.slow)])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def cloudformation(emulator: str) -> Any:
    return Aws(REGION, endpoint_url=emulator).client("cloudformation")


def held_policy(cf: Any) -> Any:
    return json.loads(cf.get_stack_policy(StackName="cc-websocket-api").get("StackPolicyBody") or "null")


def stage_name(cf: Any) -> str:
    stack = cf.describe_stacks(StackName="cc-websocket-api")["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["StageName"]


def test_every_stack_is_protected_and_status_says_so(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, engine_name: str
) -> None:
    rollout(env_settings, engine_name)
    cf = cloudformation(emulator)
    names = (*STACKS, "cc-websocket-rollout") if engine_name == "stepfunctions" else STACKS
    assert all(cf.describe_stacks(StackName=n)["Stacks"][0]["EnableTerminationProtection"] for n in names)
    with pytest.raises(ClientError, match=r"cannot be deleted while TerminationProtection is enabled"):
        cf.delete_stack(StackName="cc-websocket-api")
    assert held_policy(cf) == json.loads(protection.POLICY)
    shown = lines(read(env_settings, Aws(REGION, endpoint_url=emulator)))
    assert [line for line in shown if "cc-websocket-" in line and "protected" in line.split()[-1:]] != []
    assert not any("UNPROTECTED" in line for line in shown)


def test_a_new_stage_name_is_refused_unless_the_run_allows_replacement(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, engine_name: str
) -> None:
    first, _, _ = rollout(env_settings, engine_name)
    moved = with_parameters(env_settings, "websocket", StageName="v2")
    with pytest.raises(protection.ReplacementRefused, match="replaces") as refused:
        rollout(moved, engine_name, confirm=cli._confirm(True))
    assert any("Stage (AWS::ApiGatewayV2::Stage) is replaced" in d for d in refused.value.details)
    cf = cloudformation(emulator)
    assert stage_name(cf) == "prod"  # nothing executed
    assert cf.describe_stacks(StackName="cc-websocket-api")["Stacks"][0]["StackStatus"] in (
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
    )
    summary, _, log = rollout(moved, engine_name, allow_replacement=True)
    assert summary["result"] == "succeeded" and stage_name(cf) == "v2"
    assert summary["websocket_url"].endswith("/v2") and summary["websocket_url"] != first["websocket_url"]
    # The stack policy denies Update:Replace of the Stage (the emulator enforces it): v2 landed, so it
    # was lifted for that update, and it holds again after.
    if engine_name == "local":  # the runner's lines go to its own log
        assert "stack policy lifted for this update" in log
    assert held_policy(cf) == json.loads(protection.POLICY)  # restored after the update


def test_the_dry_run_prints_the_url_the_plan_produces_and_flags_the_change(
    rollout: Run, env_settings: settings.EnvironmentSettings, engine_name: str
) -> None:
    first, _, _ = rollout(env_settings, engine_name)
    planned, _, log = rollout(with_parameters(env_settings, "websocket", StageName="v2"), engine_name, dry_run=True)
    host = first["websocket_url"].rsplit("/", 1)[0]
    assert planned["websocket_url"] == f"{host}/v2"
    assert f"WARNING the public wss:// URL changes from {first['websocket_url']} to {host}/v2" in log
    assert "is replaced (Replacement True): the public wss:// URL changes (a real run refuses it" in log


def test_yes_prints_each_question_with_its_answer(
    rollout: Run, env_settings: settings.EnvironmentSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli._confirm(True)("Delete it?") is True
    assert capsys.readouterr().err == "Delete it? [y/N] yes (--yes)\n"
    rollout(env_settings, confirm=cli._confirm(True))
    asked = capsys.readouterr().err
    assert "Execute " in asked and "change(s) to cc-websocket-api? [y/N] yes (--yes)" in asked


def test_a_plan_deleting_a_log_group_is_refused_by_name_and_an_alarm_removal_is_not(emulator: str) -> None:
    # A template change can drop a resource: CloudFormation's change set says Remove, no Replacement.
    cf = cloudformation(emulator)
    logs = {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/cc/protection-removal"}}
    topic = {"Type": "AWS::SNS::Topic", "Properties": {}}
    cf.create_stack(StackName="removal", TemplateBody=json.dumps({"Resources": {"Logs": logs, "Topic": topic}}))
    cf.create_change_set(StackName="removal", ChangeSetName="drop", ChangeSetType="UPDATE", TemplateBody=json.dumps(
        {"Resources": {"Topic": topic, "Other": {"Type": "AWS::SNS::Topic", "Properties": {}}}}))  # fmt: skip
    described = cf.describe_change_set(StackName="removal", ChangeSetName="drop")
    changes = steps.change_list(cf, described, "removal", "drop")
    assert {c["action"] for c in changes} >= {"Remove", "Add"}
    with pytest.raises(protection.ReplacementRefused, match="replaces or deletes 1 resource") as refused:
        protection.refuse("removal", changes)
    assert refused.value.details == ["removal: Logs (AWS::Logs::LogGroup) is deleted: its logs go with it"]
    protection.refuse("removal", [{**c, "type": "AWS::CloudWatch::Alarm"} for c in changes if c["action"] == "Remove"])
