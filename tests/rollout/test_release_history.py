"""Release history and rollback (rollout/releases.py, rollout/rollback.py), against the emulator:
every run that held the environment leaves a record in its artifacts bucket (NoEcho values
masked), `history` lists them newest first, and `rollback` deploys a recorded release again
through the same plan, both engines, with what AWS then holds read back."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from generator.project import Project
from rollout import cli, package, prepare, releases, settings, strategy
from rollout.aws import Aws
from rollout.bake import AlarmFired
from rollout.factory import Factory
from rollout.plan import PlanRefused
from rollout.report import Reporter
from rollout.rollback import RollbackRefused, choose, rollback
from tests.rollout.conftest import Run, with_parameters

REGION = "eu-west-1"
SECRET = "postgresql://owner:hunter2-not-recorded@db.rehearsal.invalid/careconnect"
# Not one of the change sets' rollback triggers (generator/stages.py ROLLBACK_TRIGGER_ALARMS): the
# update goes through and the bake, which reads every alarm, fails on it.
ALARM = "cc-websocket-alarm-connect-throttles"


def records(aws: Aws, env: settings.EnvironmentSettings) -> list[dict[str, Any]]:
    return releases.history(aws.client("s3"), env.artifacts_bucket, env.name)


def stack_parameters(aws: Aws, name: str) -> dict[str, str]:
    (stack,) = aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def code_sha256(aws: Aws, function: str = "cc-websocket-default") -> str:
    return str(aws.client("lambda").get_function_configuration(FunctionName=function)["CodeSha256"])


def other_code(built: package.Artifact, folder: Path) -> package.Artifact:
    """Other handlers code (one more file in the zip): a new content hash, a new key."""
    import zipfile

    body = io.BytesIO(built.path.read_bytes())
    with zipfile.ZipFile(body, "a") as archive:
        archive.writestr("release_marker.txt", "b\n")
    data = body.getvalue()
    digest = __import__("hashlib").sha256(data).hexdigest()
    path = folder / package.artifact_name(built.target, digest)
    path.write_bytes(data)
    return package.Artifact(path, digest, len(data), built.unzipped_size + 2, built.target)


def roll_back(
    rollout: Run, env: settings.EnvironmentSettings, engine: str, to: str | None = None, log: io.StringIO | None = None
) -> dict[str, Any]:
    """`rollout rollback` as the CLI runs it, with the test's package and emulator."""
    factory = Factory(build_package=lambda *_: rollout.built, role_settle_seconds=0)
    aws = factory.aws(env.region, endpoint_url=rollout.emulator)
    options = factory.options(poll_seconds=0, role_settle_seconds=0)
    report = Reporter(log if log is not None else io.StringIO())
    return rollback(env, aws, report, options, factory.orchestrator(engine), to).to_dict()


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_every_run_records_a_release_read_back_from_aws(
    rollout: Run, env_settings: settings.EnvironmentSettings, engine_name: str
) -> None:
    summary, aws, log = rollout(env_settings, engine_name)
    (release,) = records(aws, env_settings)
    assert f"{release['id']} recorded (succeeded)" in log
    assert release["engine"] == engine_name and release["result"] == "succeeded"
    assert release["caller"] == aws.identity()["arn"]
    assert release["started"] <= release["ended"]
    # The code: the zip the compute stack names, and what every function runs, read back.
    assert release["artifact"]["key"] == summary["artifact"]["s3_key"]
    assert release["artifact"]["code_sha256"] == code_sha256(aws)
    compute = stack_parameters(aws, "cc-websocket-compute")
    assert (compute["CodeS3Bucket"], compute["CodeS3Key"]) == (
        release["artifact"]["bucket"],
        release["artifact"]["key"],
    )
    # Every stack parameter as the stack holds it; the templates kept in the environment's bucket.
    for stage, stack in release["stacks"].items():
        held = stack_parameters(aws, stack["stack"])  # CloudFormation shows every NoEcho value as ****
        secret = {name for name, value in held.items() if value == releases.MASK}
        assert {n: v for n, v in stack["parameters"].items() if n not in secret} == {
            n: v for n, v in held.items() if n not in secret
        }
        assert {stack["parameters"][n] for n in secret} <= {"", releases.MASK}  # empty: not a secret to keep
        assert stack["action"] == "created"  # the compute stack then updated by `carry`: UPDATE_COMPLETE
        assert (
            stack["status"]
            == aws.client("cloudformation").describe_stacks(StackName=stack["stack"])["Stacks"][0]["StackStatus"]
        )
        kept = aws.client("s3").get_object(Bucket=env_settings.artifacts_bucket, Key=release["templates"][stage]["key"])
        assert __import__("hashlib").sha256(kept["Body"].read()).hexdigest() == release["templates"][stage]["sha256"]
    assert [s["stage"] for s in release["stages"]] == [s["stage"] for s in summary["stages"]]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Project.find().root)
    assert release["git"]["commit"] == head.stdout.strip()


def test_a_no_echo_value_is_never_recorded(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    env = with_parameters(env_settings, "compute", MigrationDatabaseUrl=SECRET)
    _, aws, _ = rollout(env)
    (release,) = records(aws, env)
    body = aws.client("s3").get_object(Bucket=env.artifacts_bucket, Key=releases.key(env.name, release["id"]))
    assert SECRET not in body["Body"].read().decode()
    assert release["stacks"]["compute"]["parameters"]["MigrationDatabaseUrl"] == releases.MASK


def test_a_failed_bake_is_recorded_and_advises_a_rollback(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failed run's record holds what the stacks did (the release is live) and why it failed;
    the command line advises `rollback`, not running the same command again."""
    from tests.rollout.test_bake import cloudwatch, on_a_minute

    rollout(env_settings)
    on_a_minute()
    cloudwatch(emulator).set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed")
    faster = with_parameters(env_settings, "websocket", ThrottlingRateLimit="321")
    with pytest.raises(AlarmFired):
        rollout(faster, bake_seconds=60, sleep=lambda _s: None)
    failed, first = records(Aws(REGION, endpoint_url=emulator), env_settings)
    assert failed["result"] == "failed" and "alarm(s) in ALARM" in failed["error"]
    assert failed["stacks"]["websocket"]["action"] == "updated"  # as the stack's status says: it is live
    assert failed["stacks"]["compute"]["action"] == "unchanged"
    assert failed["stacks"]["websocket"]["parameters"]["ThrottlingRateLimit"] == "321"
    assert first["result"] == "succeeded"
    # The command line, as the engineer meets it.
    factory = Factory(build_package=lambda *_: rollout.built, role_settle_seconds=0)
    deploy = ["deploy", "--env", "rehearsal", "--yes", "--endpoint-url", emulator, "--poll-seconds", "0"]
    on_a_minute()
    cloudwatch(emulator).set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed")
    assert cli.main([*deploy, "--bake-seconds", "60"], factory) == 1
    err = capsys.readouterr().err
    assert "Roll it back: python -m rollout rollback --env rehearsal" in err
    assert "run the same command again" not in err


def test_a_dry_run_records_nothing(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    summary, aws, _ = rollout(env_settings, dry_run=True)
    assert summary["result"] == "planned" and records(aws, env_settings) == []


def test_runs_started_within_one_second_are_in_the_history_in_their_order() -> None:
    """Runs follow each other within a second (the lock serializes them, a no-op takes a fraction
    of one): their ids sort as they started, never by their random part."""
    moments = [1_796_409_286 + n / 100 for n in range(20)]  # twenty runs in one second
    started = [prepare.new_run_id(lambda moment=moment: moment) for moment in moments]
    assert sorted(reversed(started), key=releases.sort_key) == started
    assert releases.sort_key("1796409286-0a0a0a0a") < releases.sort_key(started[0])  # a record from before


def test_history_lists_releases_newest_first(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = []
    for rate in ("101", "102", "103"):
        _, aws, _ = rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit=rate))
        ids.append(records(aws, env_settings)[0]["id"])
    found = records(aws, env_settings)
    assert [r["id"] for r in found] == ids[::-1]
    assert [r["stacks"]["websocket"]["parameters"]["ThrottlingRateLimit"] for r in found] == ["103", "102", "101"]
    target = ["--env", "rehearsal", "--endpoint-url", emulator]
    assert cli.main(["history", *target, "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ids[:0:-1]
    assert all("succeeded" in line and aws.identity()["arn"] in line for line in lines)
    assert cli.main(["history", *target, "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ids[::-1]
    with pytest.raises(SystemExit):
        cli.main(["history", *target, "--limit", "0"])
    assert "expected a whole number above 0" in capsys.readouterr().err


@pytest.mark.parametrize("engine_name", ["local", pytest.param("stepfunctions", marks=pytest.mark.slow)])
def test_rollback_restores_the_previous_code_and_parameters(
    rollout: Run,
    env_settings: settings.EnvironmentSettings,
    built_artifact: package.Artifact,
    tmp_path: Path,
    engine_name: str,
) -> None:
    _, aws, _ = rollout(env_settings, engine_name)
    good_code, good_api = code_sha256(aws), stack_parameters(aws, "cc-websocket-api")
    good = records(aws, env_settings)[0]
    # The bad release went out as a canary; the rollback is all at once, and an alarm in ALARM (why
    # one rolls back) is not a rollback trigger of its change sets: it would undo the rollback.
    bad = dataclasses.replace(
        with_parameters(env_settings, "websocket", ThrottlingRateLimit="7"), release=strategy.Release("canary", 10, 0)
    )
    rollout(bad, engine_name, build_package=lambda *_: other_code(built_artifact, tmp_path))
    assert code_sha256(aws) != good_code and stack_parameters(aws, "cc-websocket-api")["ThrottlingRateLimit"] == "7"
    current = records(aws, env_settings)[0]
    firing = "cc-websocket-alarm-default-errors"  # a rollback trigger (generator/stages.py)
    aws.client("cloudwatch").set_alarm_state(AlarmName=firing, StateValue="ALARM", StateReason="Threshold Crossed")
    # The settings still say the bad release: the rollback takes its inputs from the record.
    log = io.StringIO()
    summary = roll_back(rollout, bad, engine_name, log=log)
    assert summary["result"] == "succeeded"
    assert "shift" not in {stage["stage"] for stage in summary["stages"]}
    assert "all at once: the environment's canary strategy" in log.getvalue()
    if engine_name == "local":  # the Step Functions engine's lines are in its execution history
        assert f"WARNING {firing} is in ALARM already: not a rollback trigger" in log.getvalue()
    assert code_sha256(aws) == good_code  # every function runs the release's code again
    assert all(code_sha256(aws, f"cc-websocket-{f}") == good_code for f in ("connect", "disconnect", "notify"))
    assert stack_parameters(aws, "cc-websocket-api") == good_api
    assert stack_parameters(aws, "cc-websocket-compute")["CodeS3Key"] == good["artifact"]["key"]
    restored = records(aws, env_settings)[0]
    assert restored["rollback"] == {"of": current["id"], "to": good["id"]}
    assert restored["result"] == "succeeded" and restored["engine"] == engine_name
    assert restored["artifact"]["key"] == good["artifact"]["key"]
    assert restored["stacks"]["websocket"]["action"] == "updated"


def test_a_second_rollback_goes_further_back(
    rollout: Run, env_settings: settings.EnvironmentSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    for rate in ("201", "202", "203"):
        _, aws, _ = rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit=rate))
    roll_back(rollout, env_settings, "local")  # 203 -> 202
    assert stack_parameters(aws, "cc-websocket-api")["ThrottlingRateLimit"] == "202"
    roll_back(rollout, env_settings, "local")  # not back to 203, which was undone: to 201
    assert stack_parameters(aws, "cc-websocket-api")["ThrottlingRateLimit"] == "201"
    history = records(aws, env_settings)
    assert [r.get("rollback", {}).get("of") for r in history[:2]] == [history[1]["id"], history[2]["id"]]


def test_a_release_recorded_after_the_rollback_chose_its_target_is_never_undone_unseen(
    rollout: Run, env_settings: settings.EnvironmentSettings
) -> None:
    """Another engineer's deploy ends between the rollback reading the history and holding the
    lock: the rollback would undo a release nobody chose to undo. Refused under the lock."""
    for rate in ("201", "202"):
        _, aws, _ = rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit=rate))
    newer = {**records(aws, env_settings)[0], "id": prepare.new_run_id()}
    admin = aws.client("s3")
    recorded: list[str] = []

    def meanwhile(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", "").startswith("locks/") and not recorded:
            recorded.append(releases.write(admin, env_settings.artifacts_bucket, newer))

    def on_session(session: Aws) -> None:
        session.events.register("provide-client-params.s3.PutObject", meanwhile)

    factory = Factory(build_package=lambda *_: rollout.built, role_settle_seconds=0, on_session=on_session)
    engineer = factory.aws(env_settings.region, endpoint_url=rollout.emulator)
    with pytest.raises(PlanRefused, match=f"release {newer['id']} was recorded after this rollback chose"):
        rollback(
            env_settings, engineer, Reporter(io.StringIO()), factory.options(poll_seconds=0, role_settle_seconds=0),
            factory.orchestrator("local"),
        )  # fmt: skip
    assert recorded and stack_parameters(aws, "cc-websocket-api")["ThrottlingRateLimit"] == "202"


def test_rollback_to_a_missing_artifact_is_refused(
    rollout: Run,
    env_settings: settings.EnvironmentSettings,
    built_artifact: package.Artifact,
    tmp_path: Path,
    emulator: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, aws, _ = rollout(env_settings)
    good = records(aws, env_settings)[0]
    rollout(env_settings, build_package=lambda *_: other_code(built_artifact, tmp_path))
    live = code_sha256(aws)
    aws.client("s3").delete_object(Bucket=good["artifact"]["bucket"], Key=good["artifact"]["key"])
    with pytest.raises(RollbackRefused, match=r"handlers artifact .* is no longer in the bucket"):
        roll_back(rollout, env_settings, "local", to=good["id"])
    rollback_cli = ["rollback", "--env", "rehearsal", "--yes", "--endpoint-url", emulator, "--json"]
    assert cli.main(rollback_cli, Factory(build_package=lambda *_: rollout.built, role_settle_seconds=0)) == 2
    assert good["artifact"]["key"] in json.loads(capsys.readouterr().out)["error"]["message"]
    assert code_sha256(aws) == live and len(records(aws, env_settings)) == 2  # nothing ran, nothing recorded
    with pytest.raises(RollbackRefused, match="release 1-x is not in the history"):
        roll_back(rollout, env_settings, "local", to="1-x")


def test_masked_values_come_from_the_current_settings(rollout: Run, env_settings: settings.EnvironmentSettings) -> None:
    env = with_parameters(env_settings, "compute", MigrationDatabaseUrl=SECRET)
    _, aws, _ = rollout(env)
    first = records(aws, env)[0]["id"]
    rollout(with_parameters(env, "websocket", ThrottlingRateLimit="55"))
    log = io.StringIO()
    factory = Factory(build_package=lambda *_: rollout.built, role_settle_seconds=0)
    run = factory.orchestrator("local")
    rollback(env, aws, Reporter(log), factory.options(poll_seconds=0, role_settle_seconds=0), run)
    assert "compute parameter MigrationDatabaseUrl is NoEcho: the current settings' value is used" in log.getvalue()
    assert stack_parameters(aws, "cc-websocket-api")["ThrottlingRateLimit"] != "55"
    # Settings that no longer give it: refused before anything runs, saying where to set it.
    with pytest.raises(RollbackRefused, match=r"MigrationDatabaseUrl is NoEcho.*give none: set it there"):
        rollback(
            env_settings,
            aws,
            Reporter(io.StringIO()),
            factory.options(poll_seconds=0, role_settle_seconds=0),
            run,
            first,
        )


def test_the_default_target_skips_undone_and_identical_releases() -> None:
    def release(rid: str, result: str, code: str, of: str | None = None) -> dict[str, Any]:
        found = {"id": rid, "result": result, "artifact": {"key": code}, "stacks": {}, "templates": {}}
        return found | ({"rollback": {"of": of, "to": "?"}} if of else {})

    newest_first = [release("5-e", "declined", "e"), release("4-d", "failed", "d"), release("3-c", "succeeded", "d"),
                    release("2-b", "succeeded", "b"), release("1-a", "succeeded", "a")]  # fmt: skip
    # The current release is the newest that ran (4-d, failed: its stacks may hold it); 3-c deployed
    # the same: skipped.
    assert [r["id"] for r in choose(newest_first, None, "x")] == ["4-d", "2-b"]
    after = [release("6-f", "succeeded", "b", of="4-d"), *newest_first]
    # 6-f restored b; what 4-d deployed (and 3-c, the same) was undone: further back.
    assert choose(after, None, "x")[1]["id"] == "1-a"
    assert choose(after, "3-c", "x")[1]["id"] == "3-c"  # named: as asked
    with pytest.raises(RollbackRefused, match="no succeeded release before 1-a"):
        choose([release("1-a", "succeeded", "a")], None, "x")


def test_git_state_of_the_project_folder(tmp_path: Path) -> None:
    assert releases.git_state(tmp_path) is None  # not a checkout: absent from the record
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert releases.git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "new_handler.py").write_text("")  # untracked: deployed, so the tree is dirty
    assert releases.git_state(tmp_path) == {"commit": head, "dirty": True}


def test_history_and_rollback_need_nothing_beyond_the_policy(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    """As a user holding exactly `rollout policy`'s policy, the emulator enforcing IAM: the record
    written, the history read, the release's zip and templates read back for the rollback."""
    from emulator import EMULATOR_ACCOUNT
    from emulator.iam_enforcement import enforcing
    from rollout.policy import document
    from rollout.rehearsal import as_principal
    from rollout.steps import Where

    rollout(env_settings)
    rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit="66"))
    policy = document(env_settings, "local", Where("aws", env_settings.region, EMULATOR_ACCOUNT))
    factory = Factory(build_package=lambda *_: rollout.built, role_settle_seconds=0)
    engineer = as_principal(Aws(env_settings.region, endpoint_url=emulator), policy, factory)
    with enforcing():
        summary = rollback(
            env_settings,
            engineer,
            Reporter(io.StringIO()),
            factory.options(poll_seconds=0, role_settle_seconds=0),
            factory.orchestrator("local"),
        )
        found = releases.history(engineer.client("s3"), env_settings.artifacts_bucket, env_settings.name, 1)
    assert summary.result == "succeeded" and "rollback" in found[0]
    assert found[0]["caller"].endswith(":user/release-engineer")
    assert stack_parameters(engineer, "cc-websocket-api")["ThrottlingRateLimit"] != "66"


def test_a_rollback_dry_run_shows_the_plan_and_records_nothing(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rollout(env_settings)
    _, aws, _ = rollout(with_parameters(env_settings, "websocket", ThrottlingRateLimit="44"))
    before = records(aws, env_settings)
    command = [
        "rollback",
        "--env",
        "rehearsal",
        "--dry-run",
        "--json",
        "--endpoint-url",
        emulator,
        "--poll-seconds",
        "0",
    ]
    assert cli.main(command, Factory(build_package=lambda *_: rollout.built, role_settle_seconds=0)) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["result"] == "planned"
    assert f"from {before[0]['id']} (succeeded) to {before[1]['id']}" in captured.err
    assert "Modify   Stage" in captured.err  # the change set that would restore the throttling
    assert (
        records(aws, env_settings) == before
        and stack_parameters(aws, "cc-websocket-api")["ThrottlingRateLimit"] == "44"
    )
