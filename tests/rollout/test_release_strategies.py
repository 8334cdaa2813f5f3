"""Canary and linear releases (rollout/shift_step.py): the live aliases' weights moved by compute
stack updates, the alarms read between moves, an alarm rolling the aliases back, and the
pre-traffic hook run before any weight moves."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.cloudformation.models import CloudFormationBackend

from emulator import advance_clock, lambda_versions
from generator.stages import ROLLBACK_TRIGGER_ALARMS
from rollout import package, settings, shift_step, status, strategy
from rollout.aws import Aws
from rollout.bake import AlarmFired
from rollout.shift_step import PreTrafficRefused
from rollout.stacks import StageFailed
from tests.rollout.conftest import Run, with_parameters
from tests.rollout.test_bake import on_a_minute
from tests.rollout.test_pre_traffic import BROKEN_DEFAULT, with_file

ALARM = "cc-websocket-alarm-default-errors"
FUNCTIONS = ("connect", "disconnect", "default", "cleanup", "notify")


def released(
    base: settings.EnvironmentSettings, memory: str, release: strategy.Release
) -> settings.EnvironmentSettings:
    """The environment with another configuration (a new version of every function) and a strategy."""
    return dataclasses.replace(with_parameters(base, "compute", MemorySize=memory), release=release)


def alias(emulator: str, suffix: str) -> dict[str, Any]:
    lam = boto3.client("lambda", region_name="eu-west-1", endpoint_url=emulator)
    return dict(lam.get_alias(FunctionName=f"cc-websocket-{suffix}", Name="live"))


def weights(found: dict[str, Any]) -> dict[str, float]:
    return dict((found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})


def stages(summary: dict[str, Any]) -> dict[str, str]:
    return {stage["stage"]: stage["action"] for stage in summary["stages"]}


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_a_canary_moves_ten_percent_then_all_and_the_aliases_serve_the_new_versions(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, engine_name: str
) -> None:
    rollout(env_settings, engine_name)
    old = {s: alias(emulator, s)["FunctionVersion"] for s in FUNCTIONS}
    seen: list[tuple[str, dict[str, float]]] = []
    shown: list[str] = []

    def look(_seconds: float) -> None:
        found = alias(emulator, "default")
        seen.append((found["FunctionVersion"], weights(found)))
        if weights(found) and not shown:  # `status` during the shift
            shown.extend(status.lines(status.read(canary, Aws("eu-west-1", endpoint_url=emulator))))

    canary = released(env_settings, "512", strategy.Release("canary", 10, 20))
    summary, _, log = rollout(canary, engine_name, poll_seconds=10, sleep=look)
    assert stages(summary)["shift"] == "succeeded"
    for suffix in FUNCTIONS:
        now = alias(emulator, suffix)
        assert now["FunctionVersion"] != old[suffix] and not weights(now)  # the new version alone
    if engine_name == "local":  # the local engine's waits are this process's: the moves were seen
        new = alias(emulator, "default")["FunctionVersion"]
        assert (old["default"], {new: 0.1}) in seen
        assert f"  alias     cc-websocket-default:live -> version {old['default']} (10% to version {new})" in shown
        assert any("the live aliases send 10% of invocations to the new versions" in line for line in shown)
        assert "10% to the new versions" in log and "100% to the new versions" in log
        assert "no pre-traffic hook" in log


def test_a_linear_release_moves_every_step(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)
    old = alias(emulator, "connect")["FunctionVersion"]
    seen: list[dict[str, float]] = []
    linear = released(env_settings, "512", strategy.Release("linear", 25, 10))
    summary, _, _ = rollout(linear, poll_seconds=10, sleep=lambda _s: seen.append(weights(alias(emulator, "connect"))))
    assert list(stages(summary))[-2:] == ["shift", "prune"]  # the old versions pruned once the shift is done
    new = alias(emulator, "connect")["FunctionVersion"]
    assert new != old
    moves = [w[new] for w in seen if new in w]
    assert sorted(set(moves)) == [0.25, 0.5, 0.75]


def _fire_on_the_first_look(emulator: str) -> Any:
    """A sleep that puts the alarm in ALARM at the shift's first look (the 10% move has landed)."""
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)

    def sleep(_seconds: float) -> None:
        if weights(alias(emulator, "default")) and not cloudwatch.describe_alarms(StateValue="ALARM")["MetricAlarms"]:
            cloudwatch.set_alarm_state(
                AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed: new code fails"
            )

    return sleep


def test_a_move_its_rollback_triggers_undo_moves_every_alias_back_and_fails_naming_it(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The canary's last move fires a trigger while CloudFormation applies it: the stack is rolled
    back to the 10% move, so the new versions still get 10% until the shift moves them back."""
    rollout(env_settings)
    old = {s: alias(emulator, s)["FunctionVersion"] for s in FUNCTIONS}
    on_a_minute()
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)
    execute = CloudFormationBackend.execute_change_set

    def firing_on_the_last_move(
        self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
    ) -> None:
        if "-m1-" in change_set_name:  # the change set of the last move
            cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed: at 100%")
        return execute(self, change_set_name, stack_name)

    monkeypatch.setattr(CloudFormationBackend, "execute_change_set", firing_on_the_last_move)
    canary = released(env_settings, "512", strategy.Release("canary", 10, 30))
    with pytest.raises(StageFailed) as failed:
        rollout(canary, poll_seconds=10, sleep=lambda _s: None)
    assert not isinstance(failed.value, AlarmFired)
    assert "the move to 100% failed" in str(failed.value) and "UPDATE_ROLLBACK_COMPLETE" in str(failed.value)
    for suffix in FUNCTIONS:  # back on the old versions; the new ones get nothing
        now = alias(emulator, suffix)
        assert now["FunctionVersion"] == old[suffix] and set(weights(now).values()) <= {0.0}


def test_an_alarm_during_the_shift_rolls_the_aliases_back_and_fails_naming_it(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)
    old = {s: alias(emulator, s)["FunctionVersion"] for s in FUNCTIONS}
    on_a_minute()
    canary = released(env_settings, "512", strategy.Release("canary", 10, 30))
    with pytest.raises(AlarmFired) as failed:
        rollout(canary, poll_seconds=10, sleep=_fire_on_the_first_look(emulator))
    assert ALARM in str(failed.value.details) and "10%" in str(failed.value)
    for suffix in FUNCTIONS:  # back on the old versions; the new ones get nothing
        now = alias(emulator, suffix)
        assert now["FunctionVersion"] == old[suffix] and set(weights(now).values()) <= {0.0}
    found = status.read(canary, Aws("eu-west-1", endpoint_url=emulator))
    assert not found.healthy
    assert {a.function: a.version for a in found.aliases} == {f"cc-websocket-{s}": v for s, v in old.items()}
    assert any("its shift was rolled back: the live aliases serve versions" in f for f in found.findings)


def test_on_the_step_functions_engine_an_alarm_moves_the_shift_back(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    """The runner's shift reads the alarms between moves as the local one does: an alarm already in
    ALARM is no trigger of the change sets (the versions are published), and the first look moves
    the aliases back."""
    rollout(env_settings, "stepfunctions")
    old = {s: alias(emulator, s)["FunctionVersion"] for s in FUNCTIONS}
    on_a_minute()
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed: still failing")
    canary = released(env_settings, "512", strategy.Release("canary", 10, 1))
    with pytest.raises(StageFailed, match="alarm"):
        rollout(canary, "stepfunctions")
    for suffix in FUNCTIONS:
        now = alias(emulator, suffix)
        assert now["FunctionVersion"] == old[suffix] and set(weights(now).values()) <= {0.0}
    compute = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=emulator).describe_stacks(
        StackName="cc-websocket-compute"
    )["Stacks"][0]
    held = {p["ParameterKey"]: p["ParameterValue"] for p in compute["Parameters"]}
    assert held["ShiftFromVersions"] and held["NewVersionWeight"] == "0"  # the next run shifts again


def test_a_version_alarm_left_in_alarm_by_the_version_before_does_not_move_a_healthy_release_back(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    """The release's compute update points the alarm at the new version and keeps its state (as
    PutMetricAlarm does): the shift resets it before its first look, CloudWatch's next evaluation
    judges the new version."""
    rollout(env_settings)
    watched = "cc-websocket-alarm-default-version-errors"
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)
    cloudwatch.set_alarm_state(AlarmName=watched, StateValue="ALARM", StateReason="Threshold Crossed: the old version")
    canary = released(env_settings, "512", strategy.Release("canary", 10, 10))
    summary, _, log = rollout(canary, poll_seconds=10, sleep=lambda _s: None)
    assert stages(summary)["shift"] == "succeeded"
    assert f"{watched}: ALARM of the version before, reset to OK for the new one" in log


def broken_default(built: package.Artifact, folder: Path) -> package.Artifact:
    """The handlers with a $default that raises: a new zip, a new key."""
    data = with_file(built.path.read_bytes(), "handlers/default.py", BROKEN_DEFAULT)
    digest = hashlib.sha256(data).hexdigest()
    path = folder / package.artifact_name(built.target, digest)
    path.write_bytes(data)
    return package.Artifact(path, digest, len(data), built.unzipped_size, built.target)


def test_a_new_version_failing_at_ten_percent_fires_its_own_alarm_and_the_shift_moves_back(
    rollout: Run,
    env_settings: settings.EnvironmentSettings,
    emulator: str,
    built_artifact: package.Artifact,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The version alarm watches the new version through the alias alone (its ExecutedVersion)."""
    rollout(env_settings)
    old = alias(emulator, "default")["FunctionVersion"]
    on_a_minute()
    lam = boto3.client("lambda", region_name="eu-west-1", endpoint_url=emulator)
    monkeypatch.setattr(lambda_versions, "chooser", lambda weights: weights[-1][0])  # the 10%: the new version

    def traffic(_seconds: float) -> None:
        if weights(alias(emulator, "default")) and not any(
            w == 0 for w in weights(alias(emulator, "default")).values()
        ):
            for _ in range(3):
                lam.invoke(FunctionName="cc-websocket-default:live", Payload=b"{}")
            advance_clock(60)  # CloudWatch's next evaluation

    canary = dataclasses.replace(env_settings, release=strategy.Release("canary", 10, 120))
    with pytest.raises(AlarmFired) as failed:
        rollout(
            canary, poll_seconds=30, sleep=traffic, build_package=lambda *_: broken_default(built_artifact, tmp_path)
        )
    assert "cc-websocket-alarm-default-version-errors" in str(failed.value.details)
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)
    (watch,) = cloudwatch.describe_alarms(AlarmNames=["cc-websocket-alarm-default-version-errors"])["MetricAlarms"]
    dimensions = {d["Name"]: d["Value"] for d in watch["Dimensions"]}
    assert dimensions["Resource"] == "cc-websocket-default:live" and dimensions["ExecutedVersion"] != old
    assert alias(emulator, "default")["FunctionVersion"] == old  # back on the old version


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_an_alarm_that_fires_during_the_update_rolls_it_back_and_one_firing_before_does_not_block_a_fix(
    rollout: Run,
    env_settings: settings.EnvironmentSettings,
    emulator: str,
    engine_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rollout(env_settings, engine_name)
    on_a_minute()
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)
    # Every trigger firing (an outage): the change set must still name its (empty) triggers, or
    # CloudFormation would use the stack's last ones, these very alarms.
    triggers = [f"cc-websocket-alarm-{name}" for name in ROLLBACK_TRIGGER_ALARMS]
    for name in triggers:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: before the fix")
    fix = with_parameters(env_settings, "compute", MemorySize="512")
    summary, _, log = rollout(fix, engine_name, sleep=lambda _s: None)  # SAM #716: the fix goes out
    assert stages(summary)["compute"] == "updated"
    if engine_name == "local":
        assert all(f"WARNING {name} is in ALARM already: not a rollback trigger" in log for name in triggers)
    old = alias(emulator, "default")["FunctionVersion"]
    for name in triggers:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="fixed")
    execute = CloudFormationBackend.execute_change_set

    def firing_meanwhile(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed: the update")
        return execute(self, change_set_name, stack_name)

    monkeypatch.setattr(CloudFormationBackend, "execute_change_set", firing_meanwhile)  # the emulator's, in-process
    with pytest.raises(StageFailed, match="UPDATE_ROLLBACK_COMPLETE"):
        rollout(with_parameters(env_settings, "compute", MemorySize="1024"), engine_name, sleep=lambda _s: None)
    cf = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=emulator)
    stack = cf.describe_stacks(StackName="cc-websocket-compute")["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE" and ALARM in stack["StackStatusReason"]
    assert alias(emulator, "default")["FunctionVersion"] == old


def test_a_stopped_shift_is_shifted_again_never_promoted_at_once(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)
    old = alias(emulator, "notify")["FunctionVersion"]
    on_a_minute()
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)
    canary = released(env_settings, "512", strategy.Release("canary", 10, 10))
    with pytest.raises(AlarmFired):
        rollout(canary, poll_seconds=10, sleep=_fire_on_the_first_look(emulator))
    on_a_minute()
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="OK", StateReason="fixed")
    seen: list[dict[str, float]] = []
    summary, _, _ = rollout(canary, poll_seconds=10, sleep=lambda _s: seen.append(weights(alias(emulator, "notify"))))
    new = alias(emulator, "notify")["FunctionVersion"]
    assert stages(summary)["shift"] == "succeeded" and new != old
    assert {new: 0.1} in seen  # the same release, shifted again from the old versions


def test_the_pre_traffic_hook_runs_on_the_new_versions_before_any_weight_moves(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout(env_settings)
    old = alias(emulator, "connect")["FunctionVersion"]
    calls: list[tuple[dict[str, str], str, dict[str, float]]] = []

    def probe(lam: Any, function_names: dict[str, str], qualifier: str) -> None:
        calls.append((function_names, qualifier, weights(alias(emulator, "connect"))))
        lam.get_function(FunctionName=function_names["Connect"], Qualifier=qualifier)  # it exists

    monkeypatch.setitem(shift_step.HOOKS, "probe", probe)
    canary = released(env_settings, "512", strategy.Release("canary", 10, 0, pre_traffic="probe"))
    rollout(canary, poll_seconds=10, sleep=lambda _s: None)
    new = alias(emulator, "connect")["FunctionVersion"]
    ((names, qualifier, at_the_time),) = calls
    assert qualifier == new and names["Connect"] == "cc-websocket-connect" and set(names) == {
        "Connect", "Disconnect", "Default", "Cleanup", "Notify"}  # fmt: skip
    assert set(at_the_time.values()) <= {0.0}  # no traffic on the new versions yet
    assert new != old


def test_a_refusing_pre_traffic_hook_leaves_the_old_versions_serving(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout(env_settings)
    old = alias(emulator, "default")["FunctionVersion"]

    def refuse(_lam: Any, _names: dict[str, str], qualifier: str) -> None:
        raise RuntimeError(f"version {qualifier} closed the session with 1011")

    monkeypatch.setitem(shift_step.HOOKS, "refuse", refuse)
    canary = released(env_settings, "512", strategy.Release("canary", 10, 0, pre_traffic="refuse"))
    with pytest.raises(PreTrafficRefused, match="closed the session with 1011"):
        rollout(canary, poll_seconds=10, sleep=lambda _s: None)
    now = alias(emulator, "default")
    assert now["FunctionVersion"] == old and set(weights(now).values()) <= {0.0}


def test_a_pre_traffic_hook_named_but_not_registered_refuses_the_shift(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)
    old = alias(emulator, "default")["FunctionVersion"]
    canary = released(env_settings, "512", strategy.Release("canary", 10, 0, pre_traffic="nowhere"))
    with pytest.raises(PreTrafficRefused, match="no pre-traffic hook named 'nowhere'"):
        rollout(canary, poll_seconds=10, sleep=lambda _s: None)
    assert alias(emulator, "default")["FunctionVersion"] == old


def test_all_at_once_is_the_default_and_publishes_without_a_shift(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)
    old = alias(emulator, "default")["FunctionVersion"]
    summary, _, _ = rollout(with_parameters(env_settings, "compute", MemorySize="512"))
    assert "shift" not in stages(summary)
    now = alias(emulator, "default")
    assert now["FunctionVersion"] != old and not weights(now)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"strategy": "blue-green"}, "release.strategy"),
        ({"strategy": "canary", "percent": 0, "bake_seconds": 60}, "release.percent"),
        ({"strategy": "canary", "percent": 10}, "release.bake_seconds"),
        ({"strategy": "linear", "percent": 25, "bake_seconds": 60}, "release.bake_seconds: not a setting"),
        ({"strategy": "linear", "percent": True, "interval_seconds": 60}, "release.percent"),
        ("canary", "release: expected a mapping"),
    ],
)
def test_a_release_setting_that_is_not_one_is_refused_by_name(raw: Any, problem: str) -> None:
    with pytest.raises(strategy.StrategyError, match=problem):
        strategy.parse(raw)


def test_the_strategies_moves() -> None:
    assert shift_step.weights_of("canary", 10) == (0.1,)
    assert shift_step.weights_of("linear", 25) == (0.25, 0.5, 0.75)
    assert shift_step.weights_of("linear", 30) == (0.3, 0.6, 0.9)
    assert strategy.parse(None) == strategy.Release()


def test_the_websocket_session_hook_passes_a_healthy_version_and_refuses_one_that_cannot_reach_the_table(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, handlers_url: str, owner_db: Any
) -> None:
    # The real hook (rollout/pre_traffic.py): a session through $connect, the dialog's frame and
    # $disconnect, on each new version, against PostgreSQL.
    on_the_table = with_parameters(env_settings, "compute", DatabaseAuth="url", DatabaseUrl=handlers_url)
    rollout(on_the_table)
    hook = strategy.Release("canary", 10, 0, pre_traffic="websocket-session")
    healthy = released(on_the_table, "512", hook)
    summary, _, log = rollout(healthy, poll_seconds=10, sleep=lambda _s: None)
    assert stages(summary)["shift"] == "succeeded"
    assert "pre-traffic check 'websocket-session' passed" in log
    serving = alias(emulator, "connect")["FunctionVersion"]
    assert owner_db.run("SELECT count(*) FROM websocket_connections")[0][0] == 0  # the session left no row
    url = healthy.parameters["compute"]["DatabaseUrl"]
    wrong = url.rsplit("/", 1)[0] + "/no_such_database"  # the new version's configuration cannot reach the table
    broken = released(with_parameters(on_the_table, "compute", DatabaseUrl=wrong), "640", hook)
    with pytest.raises(PreTrafficRefused, match=r"refused version \d+: \$connect on cc-websocket-connect") as refused:
        rollout(broken, poll_seconds=10, sleep=lambda _s: None)
    assert "statusCode 500" in str(refused.value) and url.split("@")[0] not in str(refused.value)  # no password shown
    now = alias(emulator, "connect")
    assert now["FunctionVersion"] == serving and set(weights(now).values()) <= {0.0}  # no traffic moved
