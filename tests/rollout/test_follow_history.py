"""Following an execution (the Step Functions engine, `watch`) reads only the events after the
last one seen, newest first in pages of HISTORY_PAGE, instead of the whole history at every
look."""

from __future__ import annotations

import io
from typing import Any

import pytest

from rollout import package, settings, sfn_engine
from rollout.aws import Aws
from rollout.options import Options
from rollout.rehearsal import prepare_account
from rollout.report import Reporter


@pytest.mark.slow  # a Step Functions rollout, as the engine's scenarios
def test_each_look_reads_only_the_new_events(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    aws = Aws(env_settings.region, endpoint_url=emulator)
    prepare_account(aws, env_settings)
    pages: list[list[int]] = []  # the event ids each GetExecutionHistory call answered

    def count(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if model.name == "GetExecutionHistory":
            pages.append([e["id"] for e in parsed.get("events", [])])

    aws.events.register("after-call", count)
    options = Options(poll_seconds=0.05, role_settle_seconds=0, build_package=lambda *_: built_artifact)
    summary = sfn_engine.run(env_settings, aws, Reporter(io.StringIO()), options).to_dict()
    looks = list(pages)  # the rollout's own calls, before the test reads the history
    read = sum(len(page) for page in looks)
    history = len(
        aws.client("stepfunctions").get_execution_history(executionArn=summary["execution"], maxResults=1000)["events"]
    )
    rereading = sum(max(page, default=0) for page in looks)  # the whole history at every look
    assert summary["result"] == "succeeded" and len(looks) >= 3
    assert all(len(page) <= sfn_engine.HISTORY_PAGE for page in looks)
    assert all(page == sorted(page, reverse=True) for page in looks)  # newest first
    assert read <= history + len(looks) * sfn_engine.HISTORY_PAGE and read < rereading / 2
