"""Environment settings: every mistake is named, with the file and what to fix, before any AWS call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.project import Project
from rollout import settings

ENVIRONMENTS = Project.find().environments
GOOD: dict[str, Any] = yaml.safe_load((ENVIRONMENTS / "rehearsal.yaml").read_text())


def check(tmp_path: Path, **changes: Any) -> settings.EnvironmentSettings:
    raw = {**GOOD, **changes}
    environment(tmp_path, "test").write_text(yaml.safe_dump(raw))
    return settings.load("test", project=Project(tmp_path))


def environment(root: Path, name: str) -> Path:
    """Where a project rooted at `root` keeps environment `name`."""
    (root / "environments").mkdir(exist_ok=True)
    return root / "environments" / f"{name}.yaml"


def test_repository_environments_load() -> None:
    env = settings.load("rehearsal")
    assert env.stacks == {"compute": "cc-websocket-compute", "websocket": "cc-websocket-api"}
    assert env.parameters["websocket"]["NamePrefix"] == "cc"  # shared parameters reach both stacks
    assert "prod" in settings.available(Project.find())


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(settings.SettingsError, match=r"unknown environment 'staging': expected one of .*rehearsal"):
        settings.load("staging")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"region": "moon-1"}, "region: 'moon-1' is not an AWS region name"),
        ({"artifacts_bucket": "Bad_Bucket"}, "artifacts_bucket: 'Bad_Bucket' is not an S3 bucket name"),
        ({"colour": "blue"}, "colour: unknown setting"),
        ({"stacks": {"compute": "a"}}, "stacks: expected exactly compute, websocket"),
        ({"parameters": {"websocket": {"ThrottlingRateLimit": -1}}}, "parameters.websocket.ThrottlingRateLimit: expected a number from 1"),
        ({"parameters": {"websocket": {"StageName": "$default"}}}, "parameters.websocket.StageName: expected matching"),
        ({"parameters": {"compute": {"Colour": "x"}}}, "parameters.compute.Colour: no such parameter in the compute template"),
        ({"parameters": {"compute": {"CodeS3Key": "x.zip"}}}, "parameters.compute.CodeS3Key: is set by the rollout itself"),
        ({"parameters": {"compute": {"DatabaseAuth": "secret"}}}, "parameters.compute: DatabaseAuth=secret needs DatabaseSecretArn"),
        ({"parameters": {"shared": {"Nope": "1"}}}, "parameters.shared.Nope: no template has this parameter"),
        ({"parameters": {"compute": {"DatabaseAuth": "iam", "DatabaseHost": "h", "DatabaseUser": "u",
                                     "DatabaseResourceId": "db-X"}}}, "parameters.compute: name exactly one JWT key"),
        # Nothing nobody meant: YAML nulls, NaN, fractions, lists and mappings where one value is meant.
        ({"parameters": {"websocket": {"StageName": None}}}, "parameters.websocket.StageName: is empty (a YAML null)"),
        ({"parameters": {"compute": {"JwtIssuer": None}}}, "JwtIssuer: is empty (a YAML null): give a value, or remove"),
        ({"parameters": {"compute": {"MemorySize": float("nan")}}}, "parameters.compute.MemorySize: expected a whole number"),
        ({"parameters": {"compute": {"MemorySize": 256.5}}}, "parameters.compute.MemorySize: expected a whole number"),
        ({"parameters": {"compute": {"JwtIssuer": ["a", "b"]}}}, "JwtIssuer: expected a single string value, not a list"),
        ({"parameters": {"compute": {"JwtIssuer": {"a": 1}}}}, "JwtIssuer: expected a single string value, not a dict"),
        ({"region": None}, "region: expected a single text value, not an empty value (a YAML null)"),
        ({"stacks": {"compute": None, "websocket": "b"}}, "stacks.compute: None is not a CloudFormation stack name"),
    ],
)  # fmt: skip
def test_mistakes_are_named(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(settings.SettingsError) as raised:
        check(tmp_path, **changes)
    assert message in str(raised.value) and "test.yaml" in str(raised.value)


def test_region_can_be_overridden() -> None:
    assert settings.load("rehearsal", region="us-west-2").region == "us-west-2"


def test_prod_refuses_until_filled_in() -> None:
    with pytest.raises(settings.SettingsError, match="artifacts_bucket"):
        settings.load("prod")


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    environment(tmp_path, "twice").write_text(yaml.safe_dump(GOOD) + "region: us-east-1\n")
    with pytest.raises(
        settings.SettingsError, match=r"twice.yaml: not valid YAML: .*'region' is given twice \(line \d+\)"
    ):
        settings.load("twice", project=Project(tmp_path))


def test_whole_numbers_written_as_floats_are_accepted_as_whole(tmp_path: Path) -> None:
    env = check(
        tmp_path, parameters={**GOOD["parameters"], "compute": {**GOOD["parameters"]["compute"], "MemorySize": 512.0}}
    )
    assert env.parameters["compute"]["MemorySize"] == "512"


def test_prod_as_shipped_names_no_jwt_key_and_is_refused_for_it(tmp_path: Path) -> None:
    prod = yaml.safe_load((ENVIRONMENTS / "prod.yaml").read_text())
    prod["artifacts_bucket"] = "cc-prod-artifacts"
    prod["parameters"]["compute"]["DatabaseSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cc/db-Ab"
    environment(tmp_path, "prod").write_text(yaml.safe_dump(prod))
    with pytest.raises(settings.SettingsError, match="name exactly one JWT key"):
        settings.load("prod", project=Project(tmp_path))


@pytest.mark.parametrize("value", ["no", "false", 0, None])
def test_migrate_takes_true_or_false_and_nothing_yaml_merely_reads_as_one(tmp_path: Path, value: Any) -> None:
    with pytest.raises(settings.SettingsError, match=r"migrate: expected true or false"):
        check(tmp_path, migrate=value)
    assert check(tmp_path, migrate=False).migrate is False and check(tmp_path).migrate is False  # rehearsal's


def test_a_yaml_boolean_where_text_is_meant_is_refused_by_name(tmp_path: Path) -> None:
    """`StageName: no` is the boolean false to YAML 1.1: the stage (and the wss:// URL) would be
    named "false". A parameter that takes true/false still takes a boolean."""
    path = environment(tmp_path, "test")
    text = yaml.safe_dump(GOOD).replace("StageName: prod", "StageName: no")
    assert "StageName: no" in text
    path.write_text(text)
    with pytest.raises(settings.SettingsError, match=r"parameters.websocket.StageName: YAML reads an unquoted no, off, "
                       r"false as the boolean false, and this parameter takes text: quote the value \(e.g. StageName: 'no'\)"):  # fmt: skip
        settings.load("test", project=Project(tmp_path))
    role = check(
        tmp_path,
        parameters={
            **GOOD["parameters"],
            "compute": {**GOOD["parameters"]["compute"], "CreateApiGatewayAccountRole": False},
        },
    )
    assert role.parameters["compute"]["CreateApiGatewayAccountRole"] == "false"
