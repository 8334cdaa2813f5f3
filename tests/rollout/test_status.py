"""`python -m rollout status`: read-only, and a clear answer for a missing stack, a function that
lost its endpoint and an alarm in ALARM."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from emulator import advance_clock
from generator.build import build_all
from generator.model import ENDPOINT_VARIABLE
from rollout import settings
from rollout.aws import Aws
from rollout.cli import main
from rollout.rehearsal import prepare_account
from rollout.status import read
from tests.rollout.conftest import HOTFIX, Run


def alarm_count() -> int:
    """The alarms the compute and websocket templates create (every one is unconditional)."""
    templates = build_all(["compute", "websocket"])
    return sum(r.resource_type == "AWS::CloudWatch::Alarm" for t in templates.values() for r in t.resources.values())


def status_json(emulator: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["status", "--env", "rehearsal", "--endpoint-url", emulator, "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_before_any_rollout_it_says_the_stacks_do_not_exist(
    emulator: str, env_settings: settings.EnvironmentSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare_account(Aws(env_settings.region, endpoint_url=emulator), env_settings)
    code, found = status_json(emulator, capsys)
    assert code == 1 and not found["healthy"]
    assert [s["status"] for s in found["stacks"]] == ["DOES_NOT_EXIST", "DOES_NOT_EXIST"]
    assert (
        "stack cc-websocket-compute does not exist: run `python -m rollout deploy --env rehearsal`" in found["findings"]
    )
    assert found["alarms"] == [] and found["functions"] == []


def test_after_a_rollout_everything_is_reported_and_healthy(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, aws, _ = rollout(env_settings)
    aws.counter.calls.clear()
    code, found = status_json(emulator, capsys)
    assert code == 0 and found["healthy"] and found["findings"] == []
    assert {s["stage"]: s["status"] for s in found["stacks"]} == {
        "compute": "UPDATE_COMPLETE",
        "websocket": "CREATE_COMPLETE",
    }
    assert all(s["last_update"].startswith("20") for s in found["stacks"])
    assert found["artifact"]["s3_key"] == summary["artifact"]["s3_key"]
    assert summary["artifact"]["sha256"].startswith(found["artifact"]["sha256_prefix"])
    assert found["management_endpoint"] == summary["management_endpoint"]
    assert found["websocket_url"] == summary["websocket_url"]
    assert len(found["functions"]) == 6 and all(f["matches"] for f in found["functions"])
    assert len(found["alarms"]) == alarm_count() and {a["state"] for a in found["alarms"]} <= {
        "INSUFFICIENT_DATA",
        "OK",
    }
    advance_clock(60)  # CloudWatch's next evaluation: no data, treated as not breaching
    code, found = status_json(emulator, capsys)
    assert code == 0 and {a["state"] for a in found["alarms"]} == {"OK"}


def test_it_changes_nothing(rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str) -> None:
    rollout(env_settings)
    aws = Aws(env_settings.region, endpoint_url=emulator)
    read(env_settings, aws)
    assert aws.counter.mutating == {}
    # identity, 2 stacks, 6 functions' endpoints, the compute stack's functions and their code,
    # the live aliases, the 3 route functions' policies, a drift detection per stack (start,
    # status, nothing drifted), alarms
    assert aws.counter.total <= 29


def test_a_stale_endpoint_and_an_alarm_in_alarm_are_findings(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, aws, _ = rollout(env_settings)
    lam = aws.client("lambda")
    variables = lam.get_function_configuration(FunctionName="cc-websocket-notify")["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName="cc-websocket-notify",
                                      Environment={"Variables": {**{k: str(v) for k, v in variables.items()}, ENDPOINT_VARIABLE: "https://old.example/prod"}})  # fmt: skip
    # The cleanup fails (the rehearsal's database does not exist); CloudWatch's next evaluation raises its alarm.
    assert lam.invoke(FunctionName="cc-websocket-cleanup", Payload=b"{}").get("FunctionError") == "Unhandled"
    advance_clock(60)
    code = main(["status", "--env", "rehearsal", "--endpoint-url", emulator])
    text = capsys.readouterr().out
    assert code == 1
    assert "3 finding(s)" in text and "5 of 6 function(s) carry it" in text
    assert "cc-websocket-notify carries AWS_WEBSOCKET_API_GATEWAY_ENDPOINT=https://old.example/prod" in text
    # the same change seen by CloudFormation's drift detection (the value never printed)
    assert (
        "stack cc-websocket-compute drifted: NotifyFunction (AWS::Lambda::Function) MODIFIED: "
        "/Environment/Variables/AWS_WEBSOCKET_API_GATEWAY_ENDPOINT NOT_EQUAL (value not shown)"
    ) in text
    assert "alarm cc-websocket-alarm-cleanup-errors is in ALARM (Threshold Crossed: 1 out of the last 1" in text
    assert f"1 ALARM, {alarm_count() - 1} OK" in text


def test_an_unknown_environment_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["status", "--env", "nowhere"]) == 2
    assert "unknown environment 'nowhere'" in capsys.readouterr().err


def test_code_changed_behind_the_stack_is_a_finding_until_deploy_restores_it(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stack names one artifact, a hotfix (update-function-code) runs another: status says so
    (the artifact it names is not the code running), and the next deploy puts the artifact back."""
    _, aws, _ = rollout(env_settings)
    aws.client("s3").put_object(Bucket=env_settings.artifacts_bucket, Key="hotfix.zip", Body=HOTFIX)
    aws.client("lambda").update_function_code(
        FunctionName="cc-websocket-default", S3Bucket=env_settings.artifacts_bucket, S3Key="hotfix.zip"
    )
    code, found = status_json(emulator, capsys)
    assert code == 1
    (finding,) = found["findings"]
    assert finding.startswith(f"cc-websocket-default runs code {hashlib.sha256(HOTFIX).hexdigest()[:20]}..., not ")
    summary, _, _ = rollout(env_settings)
    assert (
        summary["stages"][0]["action"] == "updated"
        and "code restored on cc-websocket-default" in (summary["stages"][0]["detail"])
    )
    code, found = status_json(emulator, capsys)
    assert (code, found["findings"]) == (0, [])
    assert len(set(found["code"].values())) == 1  # every function runs the one artifact


def test_a_re_created_compute_stack_leaves_the_api_unable_to_invoke_and_status_says_how_to_restore_it(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The invoke permissions are the websocket stack's but live in the functions' policies: a
    compute stack deleted and deployed again takes them with the old functions, and the websocket
    stack, whose inputs are the same alias ARNs, does not create them again."""
    _, aws, _ = rollout(env_settings)
    cloudformation = aws.client("cloudformation")
    cloudformation.update_termination_protection(StackName="cc-websocket-compute", EnableTerminationProtection=False)
    cloudformation.delete_stack(StackName="cc-websocket-compute")
    cloudformation.get_waiter("stack_delete_complete").wait(StackName="cc-websocket-compute", WaiterConfig={"Delay": 0})
    rollout(env_settings)
    code, found = status_json(emulator, capsys)
    cannot = [f for f in found["findings"] if f.startswith("the API cannot invoke")]
    assert code == 1 and len(cannot) == 3 and all("aws lambda add-permission" in f for f in cannot)
    for finding in cannot:  # the command it gives restores the grant
        argv = finding.split("restore it: aws lambda add-permission ", 1)[1].split()
        options = dict(zip(argv[::2], argv[1::2], strict=True))
        aws.client("lambda").add_permission(
            FunctionName=options["--function-name"], StatementId=options["--statement-id"],
            Action=options["--action"], Principal=options["--principal"],
            SourceAccount=options["--source-account"], SourceArn=options["--source-arn"],
        )  # fmt: skip
    code, found = status_json(emulator, capsys)
    assert not [f for f in found["findings"] if f.startswith("the API cannot invoke")]
