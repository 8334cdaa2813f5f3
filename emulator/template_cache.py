"""Template parsing in the emulator, fast: moto parses every template with PyYAML's pure-Python
loader, several times per call (CreateChangeSet parses the new text, the no-op check and the rule
checks parse it again, an update parses the old one too). On the rollout's templates that was
most of the emulator's time. Here each distinct text is parsed once, with libyaml when PyYAML has
it, and every caller gets its own copy (moto edits the dict it is given).

Same result as moto's parser: the same resolver (so the same scalar types), moto's own handler for
the short-form intrinsics (`!Ref`, `!Sub`...), JSON when the text is not YAML.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import yaml
from moto.cloudformation.models import ChangeSet, Stack
from moto.cloudformation.utils import yaml_tag_constructor

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TemplateLoader(_Base):
    """Safe YAML plus CloudFormation's short-form tags, as moto reads them."""


_TemplateLoader.add_multi_constructor("", yaml_tag_constructor)

_installed = False


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_TemplateLoader)
    except (yaml.parser.ParserError, yaml.scanner.ScannerError):  # moto's own fallback
        return json.loads(text)


def parse_template(text: str) -> Any:
    """The template as moto would parse it; a fresh copy for every caller."""
    return copy.deepcopy(_parsed(text))


def _change_set_parse(self: ChangeSet) -> None:
    self.template_dict = parse_template(self.template)


def install() -> None:
    """Route moto's two template parsers through the cache (idempotent)."""
    global _installed
    if _installed:
        return
    Stack.parse_template = staticmethod(parse_template)  # type: ignore[method-assign, assignment]
    ChangeSet._parse_template = _change_set_parse  # type: ignore[method-assign]
    _installed = True
