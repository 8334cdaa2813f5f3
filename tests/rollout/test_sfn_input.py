"""The Step Functions engine's execution input: every parameter, secrets kept out."""

from __future__ import annotations

import pytest

from rollout import engine, settings, sfn_engine
from rollout.preflight import rendered_templates
from tests.rollout.conftest import with_parameters


def test_input_carries_every_parameter_and_existing_back_edges() -> None:
    env = settings.load("rehearsal")
    document = sfn_engine.execution_input(engine.plan_for(env), rendered_templates(), "handlers/x.zip",
                                          {"websocket": {"WebSocketManagementEndpoint": "https://a/prod"}})  # fmt: skip
    compute = document["stacks"]["compute"]["parameters"]
    assert compute["CodeS3Key"] == "handlers/x.zip" and compute["DatabaseAuth"] == "iam"
    assert compute["ManagementEndpoint"] == "https://a/prod"  # from the existing websocket stack
    assert compute["MemorySize"] == "256"  # template default filled in
    assert "ConnectFunctionArn" in document["stacks"]["websocket"]["parameters"]
    assert document["pollSeconds"] == 5 and document["changeSetName"].startswith("rollout-")


def test_noecho_values_are_refused() -> None:
    env = with_parameters(
        settings.load("rehearsal"),
        "compute",
        DatabaseAuth="url",
        DatabaseUrl="postgresql://u:p@h/d",
    )
    with pytest.raises(sfn_engine.NoEchoRefused, match="DatabaseUrl"):
        sfn_engine.execution_input(engine.plan_for(env), rendered_templates(), "handlers/x.zip", {})
