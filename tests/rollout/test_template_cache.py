"""The emulator's template cache parses as moto does and never shares what moto edits."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from moto.cloudformation.models import Stack
from moto.cloudformation.utils import yaml_tag_constructor

from emulator import template_cache
from rollout.artifacts import load_template

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "templates_out").glob("*.yaml"))


def _as_moto_parses(text: str) -> object:
    yaml.add_multi_constructor("", yaml_tag_constructor)
    return yaml.load(text, Loader=yaml.Loader)  # moto's own parser, for comparison


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_each_generated_template_parses_as_moto_parses_it(path: Path) -> None:
    text = path.read_text()
    assert template_cache.parse_template(text) == _as_moto_parses(text)
    assert load_template(text) == _as_moto_parses(text)  # what the rollout itself reads


def test_short_form_tags_and_json_parse_as_in_moto() -> None:
    short = (
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub '${AWS::StackName}-q'\n"
    )
    assert template_cache.parse_template(short) == _as_moto_parses(short)
    assert template_cache.parse_template(short)["Resources"]["Q"]["Properties"]["QueueName"] == {
        "Fn::Sub": "${AWS::StackName}-q"
    }
    as_json = '{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}'
    assert template_cache.parse_template(as_json) == {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}


def test_every_caller_gets_its_own_copy_once_installed() -> None:
    template_cache.install()
    text = TEMPLATES[0].read_text()
    first = Stack.parse_template(text)
    first["Resources"].clear()  # moto edits the dict it is given
    assert Stack.parse_template(text)["Resources"]
