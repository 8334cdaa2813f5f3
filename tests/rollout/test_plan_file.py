"""Plan now, execute later (rollout/plan_file.py): `deploy --plan-out FILE` keeps the change sets and
writes the plan with its values; `deploy --execute FILE` runs exactly those change sets, and
refuses, naming what changed, when the settings, a stack or a change set is not as planned.
Local engine only (the Step Functions execution makes its own change sets: refused by name)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rollout import cli, package, plan_file, settings
from rollout.aws import Aws
from rollout.factory import Factory
from rollout.rehearsal import prepare_account
from rollout.report import Reporter
from tests.rollout.conftest import Run, with_parameters
from tests.rollout.test_scenarios import _update_out_of_band


def _plan_out(env: settings.EnvironmentSettings, emulator: str, built: package.Artifact, path: Path, execute: bool = False) -> dict[str, Any]:  # fmt: skip
    factory = Factory(build_package=lambda *_: built, role_settle_seconds=0)
    aws = factory.aws(env.region, endpoint_url=emulator)
    prepare_account(aws, env)
    options = factory.options(poll_seconds=0)
    run = plan_file.execute if execute else plan_file.write
    return run(path, env, aws, Reporter(open(path.with_suffix(".log"), "a")), options).to_dict()


def _stage_limit(aws: Aws, endpoint: str) -> Any:
    (stage,) = aws.client("apigatewayv2").get_stages(ApiId=endpoint[8:].split(".")[0])["Items"]
    return stage["DefaultRouteSettings"]["ThrottlingRateLimit"]


def test_a_plan_kept_then_executed(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, built_artifact: package.Artifact,
    tmp_path: Path,
) -> None:  # fmt: skip
    first, aws, _ = rollout(env_settings)
    faster = with_parameters(env_settings, "websocket", ThrottlingRateLimit="444")
    path = tmp_path / "plan.json"
    planned = _plan_out(faster, emulator, built_artifact, path)
    assert planned["result"] == "planned"
    document = json.loads(path.read_text())
    websocket, compute = document["stacks"]["websocket"], document["stacks"]["compute"]
    assert compute["action"] == "unchanged" and compute["change_set"] == ""
    assert websocket["action"] == "planned" and websocket["parameters"]["ThrottlingRateLimit"] == "444"
    assert [(c["action"], c["resource"]) for c in websocket["changes"]] == [("Modify", "Stage")]
    assert [c["LogicalResourceId"] for c in websocket["property_changes"]] == ["Stage"]
    cf = aws.client("cloudformation")
    kept = cf.describe_change_set(ChangeSetName=websocket["change_set"], StackName="cc-websocket-api")
    assert (kept["Status"], kept["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")  # kept, not executed
    assert _stage_limit(aws, first["management_endpoint"]) == 100
    assert aws.client("s3").list_objects_v2(Bucket=env_settings.artifacts_bucket, Prefix="locks/")["KeyCount"] == 0

    executed = _plan_out(faster, emulator, built_artifact, path, execute=True)
    stages = {s["stage"]: s for s in executed["stages"]}
    assert stages["websocket"]["action"] == "updated" and stages["compute"]["action"] == "unchanged"
    assert any(c.startswith("cloudformation:ExecuteChangeSet") for c in stages["websocket"]["calls"])
    assert not any(c.startswith("cloudformation:CreateChangeSet") for s in stages.values() for c in s["calls"])
    assert _stage_limit(aws, first["management_endpoint"]) == 444
    done = cf.describe_change_set(ChangeSetName=websocket["change_set"], StackName="cc-websocket-api")
    assert done["ExecutionStatus"] == "EXECUTE_COMPLETE"  # exactly the change set that was planned


def test_a_plan_is_refused_when_anything_changed_since(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, built_artifact: package.Artifact,
    tmp_path: Path,
) -> None:  # fmt: skip
    _, aws, _ = rollout(env_settings)
    faster = with_parameters(env_settings, "websocket", ThrottlingRateLimit="444")
    path = tmp_path / "plan.json"
    _plan_out(faster, emulator, built_artifact, path)
    with pytest.raises(plan_file.PlanFileRefused, match="the settings, templates or handlers code are not"):
        _plan_out(with_parameters(env_settings, "websocket", ThrottlingRateLimit="445"), emulator, built_artifact,
                  path, execute=True)  # fmt: skip
    cf = aws.client("cloudformation")
    _update_out_of_band(cf, "cc-websocket-api", ThrottlingRateLimit="7")  # someone's update meanwhile
    with pytest.raises(plan_file.PlanFileRefused, match=r"cc-websocket-api changed since: it was \w+ \(last updated"):
        _plan_out(faster, emulator, built_artifact, path, execute=True)
    fresh = tmp_path / "fresh.json"
    _plan_out(faster, emulator, built_artifact, fresh)
    kept = json.loads(fresh.read_text())["stacks"]["websocket"]["change_set"]
    cf.delete_change_set(ChangeSetName=kept, StackName="cc-websocket-api")
    with pytest.raises(plan_file.PlanFileRefused, match=r"its change set rollout-.* no longer exists"):
        _plan_out(faster, emulator, built_artifact, fresh, execute=True)


def test_plan_files_are_refused_with_the_step_functions_engine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:  # fmt: skip
    code = cli.main(["deploy", "--env", "rehearsal", "--yes", "--engine", "stepfunctions",
                     "--plan-out", str(tmp_path / "p.json")])  # fmt: skip
    assert code == 2
    assert "--plan-out and --execute run with the local engine" in capsys.readouterr().err


def test_the_commands_plan_out_and_execute(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, built_artifact: package.Artifact,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    rollout(env_settings)
    factory, path = Factory(build_package=lambda *_: built_artifact, role_settle_seconds=0), tmp_path / "plan.json"
    target = ["--env", "rehearsal", "--endpoint-url", emulator, "--yes", "--json"]
    assert cli.main(["deploy", *target, "--plan-out", str(path)], factory) == 0
    assert json.loads(capsys.readouterr().out)["result"] == "planned"
    assert {s["action"] for s in json.loads(path.read_text())["stacks"].values()} == {"unchanged"}
    assert cli.main(["deploy", *target, "--execute", str(path)], factory) == 0
    executed = json.loads(capsys.readouterr().out)
    assert executed["result"] == "succeeded" and {s["action"] for s in executed["stages"]} == {"unchanged"}
    assert cli.main(["deploy", *target, "--execute", str(tmp_path / "missing.json")], factory) == 2
    assert "not a plan file" in json.loads(capsys.readouterr().out)["error"]["message"]
