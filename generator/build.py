"""Build every template, with parameter defaults optionally overridden (validated first)."""

from __future__ import annotations

from collections.abc import Mapping

from troposphere import Parameter, Template

from generator.catalog import TEMPLATES
from generator.parameters import InvalidSetting, check_value
from generator.render import file_name, render


def build_all(only: list[str] | None = None) -> dict[str, Template]:
    names = only or list(TEMPLATES)
    unknown = [n for n in names if n not in TEMPLATES]
    if unknown:
        raise InvalidSetting("--only", unknown[0], f"no such template; known: {', '.join(TEMPLATES)}")
    return {name: TEMPLATES[name]() for name in names}


def apply_defaults(templates: Mapping[str, Template], defaults: Mapping[str, str]) -> None:
    """Set new parameter defaults in every template that has the parameter.

    Every value is checked against the parameter's own constraints before any is applied, and
    a name no template declares is an error listing the names that exist.
    """
    declared: dict[str, list[Parameter]] = {}
    for template in templates.values():
        for name, parameter in template.parameters.items():
            declared.setdefault(name, []).append(parameter)
    for name, value in defaults.items():
        if name not in declared:
            raise InvalidSetting(name, value, f"no template has this parameter; known: {', '.join(sorted(declared))}")
        for parameter in declared[name]:
            check_value(parameter, value)
    for name, value in defaults.items():
        for parameter in declared[name]:
            parameter.properties["Default"] = _typed_default(parameter, value)


def _typed_default(parameter: Parameter, value: str) -> str | int | float:
    if parameter.properties.get("Type") == "Number":
        number = float(value)
        return int(number) if number.is_integer() else number
    return value


def render_all(templates: Mapping[str, Template], fmt: str) -> dict[str, str]:
    return {file_name(stem, fmt): render(template, fmt) for stem, template in templates.items()}
