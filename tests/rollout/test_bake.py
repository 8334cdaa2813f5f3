"""The bake step (rollout/bake.py) in the local engine: after the endpoint stage, any of the
stacks' alarms in ALARM fails the rollout, naming it and CloudWatch's reason; 0 skips it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from emulator import advance_clock, clock
from generator.build import build_all
from rollout import engine, package, settings
from rollout.bake import AlarmFired, alarm_prefix, checks
from rollout.errors import explain
from rollout.rehearsal import rehearse
from rollout.report import Reporter
from tests.rollout.conftest import Run, with_parameters

ALARM = "cc-websocket-alarm-connect-errors"


def alarm_count() -> int:
    """The alarms the compute and websocket templates create (every one is unconditional)."""
    templates = build_all(["compute", "websocket"])
    return sum(r.resource_type == "AWS::CloudWatch::Alarm" for t in templates.values() for r in t.resources.values())


def cloudwatch(emulator: str) -> Any:
    return boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)


def stages(summary: dict[str, Any]) -> dict[str, str]:
    return {stage["stage"]: stage["action"] for stage in summary["stages"]}


def on_a_minute() -> None:
    """The emulator's clock a second past a minute boundary: CloudWatch's next evaluation is a
    minute away, whatever the wall clock did."""
    advance_clock(61 - clock.now() % 60)


def test_a_bake_with_no_alarm_in_alarm_succeeds_after_watching(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    slept: list[float] = []
    summary, _, log = rollout(env_settings, bake_seconds=30, poll_seconds=10, sleep=slept.append)
    assert stages(summary)["bake"] == "succeeded"
    # Looks at 0, 10, 20 and 30 s, ten seconds apart.
    looks = [f"no alarm in ALARM ({t} of 30 s)" for t in (0, 10, 20)]
    assert all(look in log for look in looks) and "(30 of 30 s)" not in log and slept[-3:] == [10, 10, 10]
    assert "no alarm in ALARM for 30 s" in log
    names = [
        a["AlarmName"]
        for a in cloudwatch(emulator).describe_alarms(AlarmNamePrefix="cc-websocket-alarm-")["MetricAlarms"]
    ]
    assert len(names) == alarm_count() and ALARM in names  # the stacks' alarms exist, and were watched


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_an_alarm_in_alarm_fails_the_rollout_naming_it_and_its_reason(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, engine_name: str
) -> None:
    rollout(env_settings, engine_name)
    on_a_minute()  # SetAlarmState holds until CloudWatch's next evaluation, a minute away
    cloudwatch(emulator).set_alarm_state(AlarmName=ALARM, StateValue="ALARM",
                                         StateReason="Threshold Crossed: 1 datapoint [4.0] >= 1.0")  # fmt: skip
    with pytest.raises(AlarmFired) as failed:
        rollout(env_settings, engine_name, bake_seconds=60, sleep=lambda _s: None)
    assert str(failed.value) == "bake: 1 alarm(s) in ALARM after the rollout"
    assert failed.value.details == [f"{ALARM}: Threshold Crossed: 1 datapoint [4.0] >= 1.0"]
    failure = explain(failed.value)
    assert failure is not None and failure.exit_code == 1 and ALARM in " ".join(failure.details)


def test_an_alarm_that_fires_during_the_bake_stops_it_there(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)
    on_a_minute()
    looks: list[float] = []

    def later(seconds: float) -> None:
        looks.append(seconds)
        if len(looks) == 3:  # 30 s in, the new code starts failing
            cloudwatch(emulator).set_alarm_state(AlarmName="cc-websocket-alarm-api-integration-errors",
                                                 StateValue="ALARM", StateReason="Threshold Crossed")  # fmt: skip

    with pytest.raises(AlarmFired, match="1 alarm"):
        rollout(env_settings, bake_seconds=600, poll_seconds=10, sleep=later)
    assert len(looks) == 3  # stopped at the next look, not after 600 s


def test_new_alarms_in_insufficient_data_then_evaluated_ok_do_not_fail_a_bake(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    seen: list[set[str]] = []

    def wait(seconds: float) -> None:  # each look of the bake, then the time passing on the emulator's clock
        seen.append({a["StateValue"] for a in cloudwatch(emulator).describe_alarms()["MetricAlarms"]})
        advance_clock(seconds)

    on_a_minute()
    summary, _, _ = rollout(env_settings, bake_seconds=120, sleep=wait)
    assert stages(summary)["bake"] == "succeeded"
    assert seen[0] == {"INSUFFICIENT_DATA"}  # created moments ago, not evaluated yet, as on AWS
    assert seen[-1] == {"OK"}  # evaluated: no data, which every alarm treats as not breaching
    reasons = {a["StateReason"] for a in cloudwatch(emulator).describe_alarms()["MetricAlarms"]}
    assert all("treated as [NonBreaching]" in reason for reason in reasons)


def test_the_rehearsal_with_prods_bake_passes_with_every_alarm_evaluated_ok(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact, tmp_path: Path
) -> None:
    prod = yaml.safe_load((env_settings.path.parent / "prod.yaml").read_text())
    options = engine.Options(bake_seconds=prod["bake_seconds"], build_package=lambda *_: built_artifact)
    with (tmp_path / "report.log").open("w") as stream:
        summary = rehearse(env_settings, Reporter(stream), options).to_dict()
    (bake,) = [s for s in summary["stages"] if s["stage"] == "bake"]
    assert bake["action"] == "succeeded" and bake["detail"].startswith("600 s")
    # Ten minutes on the emulator's clock: every alarm evaluated, none still as created.
    assert summary["proof"]["alarms"] == {"OK": alarm_count()}


@pytest.mark.parametrize("expression", ["rate(5 minutes)", "cron(0/5 * * * ? *)"])
def test_a_failing_cleanup_run_by_its_schedule_fails_the_bake(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, expression: str
) -> None:
    # The rehearsal's functions reach no database (db.rehearsal.invalid): each cleanup run fails.
    every_five_minutes = with_parameters(env_settings, "compute", CleanupSchedule=expression)
    with pytest.raises(AlarmFired) as failed:
        rollout(every_five_minutes, bake_seconds=600, sleep=advance_clock)
    assert failed.value.details[0].startswith("cc-websocket-alarm-cleanup-errors: Threshold Crossed")


def test_a_schedule_that_cannot_invoke_the_cleanup_fails_the_bake(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    every_five_minutes = with_parameters(env_settings, "compute", CleanupSchedule="rate(5 minutes)")
    _, aws, _ = rollout(every_five_minutes)
    lam = aws.client("lambda")
    (statement,) = json.loads(lam.get_policy(FunctionName="cc-websocket-cleanup")["Policy"])["Statement"]
    lam.remove_permission(FunctionName="cc-websocket-cleanup", StatementId=statement["Sid"])  # the invoke permission
    with pytest.raises(AlarmFired) as failed:
        rollout(every_five_minutes, bake_seconds=600, sleep=advance_clock)
    assert [d.split(":")[0] for d in failed.value.details] == ["cc-websocket-alarm-cleanup-schedule-failed"]


def test_zero_skips_the_bake_and_a_dry_run_plans_it(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    summary, _, _ = rollout(env_settings)
    assert "bake" not in stages(summary)
    summary, aws, _ = rollout(env_settings, bake_seconds=120, dry_run=True)
    assert summary["stages"][-1] == {**summary["stages"][-1], "stage": "bake", "action": "planned"}
    assert "describe_alarms" not in str(aws.counter.calls)


def test_the_environment_sets_the_bake_and_the_command_line_overrides_it(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    raw = {"region": env_settings.region, "artifacts_bucket": env_settings.artifacts_bucket,
           "stacks": env_settings.stacks, "parameters": env_settings.parameters, "bake_seconds": 20, "migrate": False}  # fmt: skip
    baking = settings.validate("rehearsal", env_settings.path, raw)
    assert baking.bake_seconds == 20
    summary, _, _ = rollout(baking, sleep=lambda _s: None)
    assert stages(summary)["bake"] == "succeeded" and summary["stages"][-1]["detail"].startswith("20 s")
    summary, _, _ = rollout(baking, bake_seconds=0)
    assert "bake" not in stages(summary)


@pytest.mark.parametrize(("value", "problem"), [("soon", "not a whole number"), (-5, "not a whole number"),
                                                (True, "not a whole number"), (86_400, "over 21600 s")])  # fmt: skip
def test_a_bad_bake_setting_says_what_is_wrong(
    env_settings: settings.EnvironmentSettings, value: Any, problem: str
) -> None:
    raw = {"region": env_settings.region, "artifacts_bucket": env_settings.artifacts_bucket,
           "stacks": env_settings.stacks, "parameters": env_settings.parameters, "bake_seconds": value}  # fmt: skip
    with pytest.raises(settings.SettingsError, match=f"bake_seconds: .*{problem}"):
        settings.validate("rehearsal", env_settings.path, raw)


def test_the_prefix_and_the_number_of_looks() -> None:
    assert alarm_prefix("staging") == "staging-websocket-alarm-"
    assert (checks(0, 2), checks(1, 2), checks(30, 10), checks(31, 10)) == (0, 1, 3, 4)
