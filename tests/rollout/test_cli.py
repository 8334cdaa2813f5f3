"""`python -m rollout`: exit codes and messages a release engineer relies on."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from generator.model import HANDLER_FUNCTIONS
from generator.project import Project
from rollout import cli, freshness, package, settings, sfn_engine
from rollout.factory import Factory
from rollout.stacks import Declined, StageFailed
from tests.ports import free_port

DEPLOY = ["deploy", "--env", "rehearsal", "--yes", "--json"]


@pytest.fixture
def cached_package(built_artifact: package.Artifact) -> Factory:
    """The factory every command is built by, with the session's handlers zip already built."""
    return Factory(build_package=lambda *_: built_artifact, role_settle_seconds=0)


def _running(orchestrator: Any) -> Factory:
    """A factory whose orchestrators (both engines) are `orchestrator`."""
    return Factory(orchestrators={"local": orchestrator, "stepfunctions": orchestrator})


def test_deploy_against_an_endpoint_url_then_again_as_a_no_op(
    emulator: str, cached_package: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    from rollout.aws import Aws
    from rollout.rehearsal import prepare_account
    from rollout.settings import load

    prepare_account(Aws("eu-west-1", endpoint_url=emulator), load("rehearsal"))
    assert cli.main([*DEPLOY, "--endpoint-url", emulator, "--poll-seconds", "0"], cached_package) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["result"] == "succeeded" and first["websocket_url"].startswith("wss://")
    assert cli.main([*DEPLOY, "--endpoint-url", emulator, "--poll-seconds", "0"], cached_package) == 0
    second = json.loads(capsys.readouterr().out)
    # a no-op writes nothing but the environment's lock, taken and released, and its release record
    assert second["aws_calls"]["mutating"] == {"s3:PutObject": 2, "s3:DeleteObject": 1}
    assert second["management_endpoint"] == first["management_endpoint"]
    assert "prune" not in {stage["stage"] for stage in second["stages"]}  # it published nothing
    # Each step reads the stacks and functions it may change; before any change, once in all
    # (rollout.aws.RepeatedReads): 29 calls, where each step reading again made 48.
    assert second["aws_calls"]["total"] <= 32


def test_rehearse_proves_its_result(cached_package: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rehearse", "--json"], cached_package) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["proof"]["routes"] == ["$connect", "$default", "$disconnect"]
    assert len(summary["proof"]["functions"]) == len(HANDLER_FUNCTIONS)
    assert summary["proof"]["architecture"] == "arm64"  # the rehearsal settings' (and the zip's)


def test_unknown_environment_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["deploy", "--env", "nowhere", "--yes"]) == 2
    assert "unknown environment 'nowhere'" in capsys.readouterr().err


def test_non_interactive_runs_need_yes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli.main(["deploy", "--env", "rehearsal"]) == 2
    assert "pass --yes" in capsys.readouterr().err


def test_no_credentials_fail_before_anything(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:  # fmt: skip
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main([*DEPLOY, "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert "Unable to locate credentials: configure credentials" in capsys.readouterr().err


def test_unknown_profile_is_bad_usage(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert cli.main([*DEPLOY, "--profile", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_stale_templates_are_refused(emulator: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A project folder whose templates_out/ is not what the generator makes (--project-dir)."""
    import shutil

    shutil.copytree(Project.find().environments, tmp_path / "environments")
    (tmp_path / "templates_out").mkdir()
    (tmp_path / "templates_out" / "websocket.yaml").write_text("stale\n")
    assert cli.main(["--project-dir", str(tmp_path), *DEPLOY, "--endpoint-url", emulator]) == 2
    err = capsys.readouterr().err
    assert "websocket.yaml: stale" in err and "compute.yaml: missing" in err and "python -m generator" in err


def test_a_failed_stage_exits_1_and_an_interrupt_130(capsys: pytest.CaptureFixture[str]) -> None:
    def failing(*_: Any, **__: Any) -> Any:
        raise StageFailed(
            "cc-websocket-api ended UPDATE_ROLLBACK_COMPLETE",
            ["Stage (AWS::ApiGatewayV2::Stage): boom"],
        )

    assert cli.main([*DEPLOY, "--endpoint-url", "http://127.0.0.1:9"], _running(failing)) == 1
    err = capsys.readouterr().err
    assert "Stage (AWS::ApiGatewayV2::Stage): boom" in err and "Later stages did not start" in err

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    assert cli.main([*DEPLOY, "--endpoint-url", "http://127.0.0.1:9"], _running(interrupted)) == 130
    assert "to resume" in capsys.readouterr().err


def test_rehearse_with_the_stepfunctions_engine(cached_package: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rehearse", "--engine", "stepfunctions", "--poll-seconds", "0", "--json"], cached_package) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["engine"] == "stepfunctions" and summary["state_transitions"] > 0
    assert summary["proof"]["routes"] == ["$connect", "$default", "$disconnect"]
    assert summary["execution"].split(":")[-1].startswith("rehearsal-")  # named after env and artifact


def test_stepfunctions_engine_refuses_noecho_values(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise sfn_engine.NoEchoRefused("DatabaseUrl would appear in the execution history")

    deploy = [*DEPLOY, "--engine", "stepfunctions", "--endpoint-url", "http://127.0.0.1:9"]
    assert cli.main(deploy, Factory(orchestrators={"stepfunctions": refuse})) == 2
    assert "DatabaseUrl would appear" in capsys.readouterr().err


def test_freshness_is_remembered_and_any_change_renders_again(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:  # fmt: skip
    import shutil

    project = Project(tmp_path)
    out = project.templates_out
    shutil.copytree(Project.find().templates_out, out)
    renders: list[int] = []
    import generator.build

    real = generator.build.render_all
    monkeypatch.setattr(generator.build, "render_all", lambda *a: renders.append(1) or real(*a))
    first = freshness.fresh_templates(project)
    assert freshness.fresh_templates(project) == first and renders == [1]  # the second check reads the files
    (out / "compute.yaml").write_text(first["compute"] + "# edited by hand\n")
    with pytest.raises(freshness.StaleTemplates, match=r"compute\.yaml: stale"):
        freshness.fresh_templates(project)
    assert renders == [1, 1]


def test_the_emulator_command_serves_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    import boto3

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "rollout", "emulator", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Project.find().root)  # fmt: skip
    try:
        assert process.stdout is not None
        assert f"http://127.0.0.1:{port}" in process.stdout.readline()
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-west-1",
                          aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
        s3.create_bucket(
            Bucket="from-another-tool",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        )
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["from-another-tool"]
        busy = subprocess.run([sys.executable, "-m", "rollout", "emulator", "--port", str(port)],
                              capture_output=True, text=True, cwd=Project.find().root, timeout=60)  # fmt: skip
        assert busy.returncode == 2 and "pick another --port" in busy.stderr
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_the_emulator_stops_on_sigterm_and_on_an_interrupt_its_shell_ignored(stop: str) -> None:
    """A shell's background job starts with SIGINT ignored; docker and systemd send SIGTERM."""
    import signal
    import subprocess
    import sys

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "rollout", "emulator", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Project.find().root,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    assert process.stdout is not None and f"http://127.0.0.1:{port}" in process.stdout.readline()
    process.send_signal(getattr(signal, stop))
    try:
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert process.stderr is not None and "emulator stopped" in process.stderr.read()


@pytest.mark.parametrize(("typed", "answer"), [("y\n", True), ("yes\n", True), ("\n", False), ("", False)])
def test_questions_go_to_stderr_and_end_of_input_is_a_no(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], typed: str,
                                                          answer: bool) -> None:  # fmt: skip
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    assert cli._confirm(False)("Execute 3 change(s) to cc-websocket-api?") is answer
    out, err = capsys.readouterr()
    assert out == "" and "Execute 3 change(s) to cc-websocket-api? [y/N]" in err  # stdout stays the JSON's


def test_where_nothing_listens_the_answer_is_quick_and_clear(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # a port nobody listens on
    start = time.perf_counter()
    assert cli.main([*DEPLOY, "--endpoint-url", f"http://127.0.0.1:{port}"]) == 2
    assert time.perf_counter() - start < 20  # botocore's defaults took 25 s and a traceback
    out, err = capsys.readouterr()
    assert f"cannot reach http://127.0.0.1:{port}" in err
    failure = json.loads(out)  # --json: the error as JSON on stdout
    assert (
        failure["result"] == "failed" and failure["error"]["kind"] == "network" and failure["error"]["exit_code"] == 2
    )


@pytest.mark.parametrize(("argv", "message"), [
    ([*DEPLOY, "--endpoint-url", "notaurl"], "expected an http(s) URL"),
    ([*DEPLOY, "--poll-seconds", "nan"], "expected seconds between 0 and 60"),
    (["rehearse", "--yes"], "unrecognized arguments: --yes"),
])  # fmt: skip
def test_bad_arguments_are_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_bad_region_names_the_option_and_an_unknown_environment_comes_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*DEPLOY, "--region", "mars-1"]) == 2
    assert "--region 'mars-1' is not an AWS region name" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, and no --yes
    assert cli.main(["deploy", "--env", "staging"]) == 2
    assert "unknown environment 'staging'" in capsys.readouterr().err


def test_declining_is_not_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    def declined(*_: Any, **__: Any) -> Any:
        raise Declined("cc-websocket-api: change set not executed")

    assert cli.main([*DEPLOY, "--endpoint-url", "http://127.0.0.1:9"], _running(declined)) == 3
    out, err = capsys.readouterr()
    assert "you declined, nothing was executed" in err and "FAILED" not in err
    assert json.loads(out)["result"] == "declined"


def test_interrupt_advice_fits_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    assert cli.main(["rehearse"], _running(interrupted)) == 130
    err = capsys.readouterr().err
    assert "scripts/main" in err and "deploy --env" not in err
    deploy = [*DEPLOY, "--engine", "stepfunctions", "--endpoint-url", "http://127.0.0.1:9"]
    assert cli.main(deploy, _running(interrupted)) == 130
    assert "keeps running in AWS" in capsys.readouterr().err


def test_watch_says_when_nothing_runs_and_follows_a_running_execution(
    emulator: str, cached_package: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    from rollout.aws import Aws
    from rollout.rehearsal import prepare_account

    prepare_account(Aws("eu-west-1", endpoint_url=emulator), settings.load("rehearsal"))
    watch = ["watch", "--env", "rehearsal", "--endpoint-url", emulator, "--json"]
    assert cli.main(watch) == 0
    assert "nothing is running for environment rehearsal" in capsys.readouterr().err
    deploy = [*DEPLOY, "--engine", "stepfunctions", "--endpoint-url", emulator, "--poll-seconds", "0"]
    assert cli.main(deploy, cached_package) == 0
    execution = json.loads(capsys.readouterr().out)["execution"]

    def still_running(aws: Aws) -> None:  # moto cannot hold an execution open: report the last as running
        stepfunctions = aws.client("stepfunctions")
        stepfunctions.list_executions = lambda **_: {"executions": [{"executionArn": execution, "status": "RUNNING"}]}

    assert cli.main([*watch, "--poll-seconds", "0"], Factory(on_session=still_running)) == 0
    out, err = capsys.readouterr()
    assert f"following execution {execution}" in err and json.loads(out)["execution"] == execution


def test_a_malformed_aws_config_file_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    config = tmp_path / "config"
    config.write_text("[default\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "default")
    assert cli.main([*DEPLOY, "--endpoint-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "Unable to parse config file" in err and "fix the AWS config file" in err
