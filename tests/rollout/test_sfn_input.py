"""The Step Functions engine's execution input: every parameter, secrets kept out."""

from __future__ import annotations

import pytest

from rollout import artifacts, engine, settings, sfn_engine
from rollout.preflight import rendered_templates
from tests.rollout.conftest import with_parameters


def stored(bucket: str = "bucket", region: str = "eu-west-1") -> dict[str, artifacts.StoredTemplate]:
    """The templates as if uploaded (nothing reads the URLs here)."""
    return {
        stem: artifacts.StoredTemplate(
            stem, text, artifacts.object_url(bucket, artifacts.template_key(stem, text), region)
        )
        for stem, text in rendered_templates().items()
    }


def test_input_carries_every_parameter_and_existing_back_edges() -> None:
    env = settings.load("rehearsal")
    document = sfn_engine.execution_input(engine.plan_for(env), stored(), "handlers/x.zip",
                                          {"websocket": {"WebSocketManagementEndpoint": "https://a/prod"}})  # fmt: skip
    compute = document["stacks"]["compute"]["parameters"]
    assert compute["CodeS3Key"] == "handlers/x.zip" and compute["DatabaseAuth"] == "iam"
    assert compute["ManagementEndpoint"] == "https://a/prod"  # from the existing websocket stack
    assert compute["MemorySize"] == "256"  # template default filled in
    assert "ConnectFunctionArn" in document["stacks"]["websocket"]["parameters"]
    assert document["pollSeconds"] == 5 and document["changeSetName"].startswith("rollout-")
    url = document["stacks"]["compute"]["templateUrl"]
    assert url.startswith("https://bucket.s3.eu-west-1.amazonaws.com/templates/compute-")
    assert "template" not in document["stacks"]["compute"]  # bodies never travel in the input


def test_noecho_values_are_refused() -> None:
    env = with_parameters(
        settings.load("rehearsal"),
        "compute",
        DatabaseAuth="url",
        DatabaseUrl="postgresql://u:p@h/d",
    )
    with pytest.raises(sfn_engine.NoEchoRefused, match="DatabaseUrl"):
        sfn_engine.execution_input(engine.plan_for(env), stored(), "handlers/x.zip", {})
