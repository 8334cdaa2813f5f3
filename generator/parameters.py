"""Template parameters: declared once, grouped for the console, and validated.

A parameter's constraints (AllowedValues, AllowedPattern, MinValue, ...) are the single source
of truth for what a value may be. CloudFormation enforces them at deploy time; this module
enforces the same constraints earlier, when the generator is given new defaults or the rollout
reads an environment's settings, so a bad value fails before anything is written or deployed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # troposphere only where templates are built: the rollout checks settings without it
    from troposphere import Template

INTERFACE_KEY = "AWS::CloudFormation::Interface"


class InvalidSetting(ValueError):
    """A value given for a named setting that its constraints do not accept."""

    def __init__(self, name: str, value: object, reason: str) -> None:
        self.name = name
        self.value = value
        self.reason = reason
        super().__init__(f"setting {name}={value!r} is not accepted: {reason}")


class Declared(Protocol):
    """A parameter as troposphere holds it, or as a template's Parameters section gives it."""

    @property
    def title(self) -> str: ...

    @property
    def properties(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DeclaredParameter:
    """A parameter read from a template's Parameters section (plain data)."""

    title: str
    properties: dict[str, Any] = field(default_factory=dict)


def declared_in(template: Mapping[str, Any]) -> dict[str, DeclaredParameter]:
    """A parsed template's parameters, by name."""
    return {name: DeclaredParameter(name, dict(props)) for name, props in (template.get("Parameters") or {}).items()}


class ParameterSet:
    """Adds parameters to a template and remembers their console group and label."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self._groups: dict[str, list[str]] = {}
        self._labels: dict[str, str] = {}

    def add(self, group: str, name: str, label: str, **properties: Any) -> Any:
        """Declare a parameter (a troposphere Parameter); every parameter must say what it is for."""
        from troposphere import Parameter

        if not properties.get("Description"):
            raise ValueError(f"parameter {name} needs a Description")
        parameter = self.template.add_parameter(Parameter(name, **properties))
        self._groups.setdefault(group, []).append(name)
        self._labels[name] = label
        return parameter

    def interface(self) -> dict[str, Any]:
        """The `AWS::CloudFormation::Interface` metadata that orders the console form."""
        return {
            "ParameterGroups": [
                {"Label": {"default": group}, "Parameters": names} for group, names in self._groups.items()
            ],
            "ParameterLabels": {name: {"default": label} for name, label in self._labels.items()},
        }


def parameter_properties(parameter: Declared) -> dict[str, Any]:
    return dict(parameter.properties)


def describe_constraints(parameter: Declared) -> str:
    """What a parameter accepts, in words a user can act on."""
    props = parameter_properties(parameter)
    parts: list[str] = []
    if "AllowedValues" in props:
        parts.append("one of " + ", ".join(str(v) for v in props["AllowedValues"]))
    if "AllowedPattern" in props:
        parts.append(f"matching {props['AllowedPattern']}")
    if "MinValue" in props or "MaxValue" in props:
        parts.append(f"a number from {props.get('MinValue', '-inf')} to {props.get('MaxValue', 'inf')}")
    if "MinLength" in props or "MaxLength" in props:
        parts.append(f"{props.get('MinLength', 0)} to {props.get('MaxLength', 'any')} characters")
    text = "; ".join(parts) or f"any {props.get('Type', 'String')}"
    if props.get("ConstraintDescription"):
        text += f" ({props['ConstraintDescription']})"
    return text


def _items(parameter_type: str, value: str) -> list[str]:
    if parameter_type.startswith("List<") or parameter_type == "CommaDelimitedList":
        return [item.strip() for item in value.split(",")] if value else []
    return [value]


def check_value(parameter: Declared, value: object) -> str:
    """Return `value` as CloudFormation's string form, or raise InvalidSetting naming the rule."""
    props = parameter_properties(parameter)
    name = parameter.title
    parameter_type = props.get("Type", "String")
    _check_shape(name, value, parameter_type, props)
    if parameter_type == "Number" and _integral(props):
        value = _whole_number(name, value)
    text = _as_text(value)
    accepted = describe_constraints(parameter)
    for item in _items(parameter_type, text):
        if "AllowedValues" in props and item not in [str(v) for v in props["AllowedValues"]]:
            raise InvalidSetting(name, value, f"expected {accepted}")
        if parameter_type == "Number":
            _check_number(name, value, item, props, accepted)
        pattern = props.get("AllowedPattern")
        if pattern is not None and re.fullmatch(pattern, item) is None:
            raise InvalidSetting(name, value, f"expected {accepted}")
    if not (props.get("MinLength", 0) <= len(text) <= props.get("MaxLength", len(text))):
        raise InvalidSetting(name, value, f"expected {accepted}")
    return text


def _check_shape(name: str, value: object, parameter_type: str, props: Mapping[str, Any]) -> None:
    """A YAML null, a mapping, or a list where one value is meant is never turned into text."""
    if value is None:
        default = props.get("Default")
        raise InvalidSetting(
            name,
            value,
            f"is empty (a YAML null): give a value, or remove the setting to use the default ({default!r})"
            if default is not None
            else "is empty (a YAML null): give a value",
        )
    allowed = [str(v).lower() for v in props.get("AllowedValues", [])]
    if isinstance(value, bool) and not {"true", "false"} <= set(allowed):
        words = "yes, on, true" if value else "no, off, false"
        raise InvalidSetting(
            name,
            value,
            f"YAML reads an unquoted {words} as the boolean {str(value).lower()}, and this parameter "
            f"takes text: quote the value (e.g. {name}: '{'yes' if value else 'no'}') if you mean the word",
        )
    is_list = parameter_type.startswith("List<") or parameter_type == "CommaDelimitedList"
    if isinstance(value, dict) or (isinstance(value, list | tuple) and not is_list):
        raise InvalidSetting(
            name, value, f"expected a single {parameter_type.lower()} value, not a {type(value).__name__}"
        )
    if isinstance(value, list | tuple) and not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        raise InvalidSetting(name, value, "expected a list of plain values")


def _integral(props: Mapping[str, Any]) -> bool:
    """A Number parameter whose bounds and default are whole numbers means a whole number."""
    bounds = [props[key] for key in ("MinValue", "MaxValue", "Default") if key in props]
    return bool(bounds) and all(isinstance(b, int) or (isinstance(b, str) and b.lstrip("-").isdigit()) for b in bounds)


def _whole_number(name: str, value: object) -> object:
    try:
        number = float(str(value))
    except ValueError:
        return value  # _check_number names the problem
    if not math.isfinite(number) or not number.is_integer():
        raise InvalidSetting(name, value, "expected a whole number")
    return int(number)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _check_number(name: str, value: object, item: str, props: Mapping[str, Any], accepted: str) -> None:
    try:
        number = float(item)
    except ValueError:
        raise InvalidSetting(name, value, f"expected a number; {accepted}") from None
    if not math.isfinite(number):
        raise InvalidSetting(name, value, f"expected a finite number; {accepted}")
    if "MinValue" in props and number < float(props["MinValue"]):
        raise InvalidSetting(name, value, f"expected {accepted}")
    if "MaxValue" in props and number > float(props["MaxValue"]):
        raise InvalidSetting(name, value, f"expected {accepted}")


def check_values(parameters: Mapping[str, Declared], values: Mapping[str, object], *, where: str) -> dict[str, str]:
    """Validate many values at once; unknown names are an error that lists the known ones."""
    unknown = sorted(set(values) - set(parameters))
    if unknown:
        raise InvalidSetting(
            unknown[0],
            values[unknown[0]],
            f"no such parameter in {where}; known: {', '.join(sorted(parameters))}",
        )
    return {name: check_value(parameters[name], value) for name, value in values.items()}


def required_parameters(parameters: Iterable[Declared]) -> list[str]:
    """Names of parameters without a default: a deploy must supply them."""
    return [p.title for p in parameters if "Default" not in p.properties]
