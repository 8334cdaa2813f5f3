"""What the rules share: reading values the way cfn-lint resolves them.

`values` walks `Fn::If` branches (each with its own condition set) with cfn-lint's
`get_value_from_path` and resolves `Ref`, `Fn::Sub`, `Fn::Join`, `Fn::FindInMap` ... with the
validator's own `resolve_value`, so parameters, pseudo parameters and conditions count as cfn-lint
counts them. A part no linter can know (the id of a resource the stack creates) makes cfn-lint's
resolution give up; `text` then keeps the literal text around it and writes that part as
`${Name}`, which is all a rule needs to see that an ARN names *this* API and not `*`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint
from cfnlint.helpers import is_function
from cfnlint.jsonschema import Validator
from cfnlint.rules.helpers import get_resource_by_name, get_value_from_path

WEBSOCKET, HTTP = "WEBSOCKET", "HTTP"


def branches(validator: Validator, instance: Any, *path: str | int) -> Iterator[tuple[Any, Validator]]:
    """The value at `path` in each condition branch (Fn::If split, AWS::NoValue as None)."""
    yield from get_value_from_path(validator, instance, deque(path))


def values(validator: Validator, instance: Any, *path: str | int) -> Iterator[tuple[Any, Validator]]:
    """Each value `path` can take: literal, resolved by cfn-lint, or (for strings) `text`."""
    for value, branch in branches(validator, instance, *path):
        if is_function(value)[0] is None:
            yield value, branch
            continue
        resolved = [(v, vv) for v, vv, errors in branch.resolve_value(value) if not errors]
        if resolved:
            yield from resolved
        elif (shape := text(value)) is not None:
            yield shape, branch


def text(instance: Any) -> str | None:
    """A string value with the parts cfn-lint cannot resolve written `${Name}`; None if unknown."""
    if isinstance(instance, str):
        return instance
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        return str(instance)
    key, value = is_function(instance)
    if key == "Ref" and isinstance(value, str):
        return "${" + value + "}"
    if key == "Fn::GetAtt":
        parts = value.split(".", 1) if isinstance(value, str) else value
        return "${" + ".".join(str(p) for p in parts) + "}" if isinstance(parts, list) else None
    if key == "Fn::Sub":
        if isinstance(value, str):
            return value
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            string = value[0]
            for name, replacement in (value[1] or {}).items():
                shape = text(replacement)
                string = string.replace("${" + name + "}", shape if shape is not None else "${" + name + "}")
            return string
    if key == "Fn::Join" and isinstance(value, list) and len(value) == 2 and isinstance(value[1], list):
        pieces = [text(part) for part in value[1]]
        if isinstance(value[0], str) and all(piece is not None for piece in pieces):
            return value[0].join(piece for piece in pieces if piece is not None)
    return None


def referenced(instance: Any) -> set[str]:
    """Logical ids (and parameters) a value names through Ref, GetAtt or `${...}` in Fn::Sub."""
    shape = text(instance)
    found = set()
    if shape is not None:
        start = 0
        while (open_at := shape.find("${", start)) >= 0:
            close_at = shape.find("}", open_at)
            if close_at < 0:
                break
            name = shape[open_at + 2 : close_at]
            if not name.startswith("!"):
                found.add(name.split(".", 1)[0])
            start = close_at + 1
    if isinstance(instance, dict):
        for nested in instance.values():
            found |= referenced(nested) if isinstance(nested, (dict, list)) else set()
    elif isinstance(instance, list):
        for nested in instance:
            found |= referenced(nested)
    return found


def api_protocol(validator: Validator, api_id: Any) -> str | None:
    """WEBSOCKET or HTTP for an ApiId that names an AWS::ApiGatewayV2::Api here; None if unknown."""
    names = referenced(api_id)
    for name in names:
        api, api_validator = get_resource_by_name(validator, name, ["AWS::ApiGatewayV2::Api"])
        if not isinstance(api, dict):
            continue
        for protocol, _ in values(api_validator, api, "Properties", "ProtocolType"):
            if isinstance(protocol, str):
                return protocol.upper()
    return None


def websocket_apis(validator: Validator) -> set[str]:
    """Logical ids of the template's WebSocket APIs."""
    return {
        name
        for name, resource in validator.context.resources.items()
        if resource.type == "AWS::ApiGatewayV2::Api" and api_protocol(validator, {"Ref": name}) == WEBSOCKET
    }


def resource_of_type(validator: Validator, resource_type: str) -> list[str]:
    return [name for name, resource in validator.context.resources.items() if resource.type == resource_type]


def as_list(value: Any) -> list[Any]:
    """IAM accepts one item or a list for Action, Resource, Statement, Principal."""
    return value if isinstance(value, list) else [value]


def truthy(value: Any) -> bool:
    """CloudFormation booleans arrive as true, "true" or "True"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


HANDLERS = ("create", "read", "update", "delete")


class ProviderSchemasMissing(RuntimeError):
    """The installed cfn-lint does not bundle provider schemas where this pack reads them."""


@cache
def provider_permissions(resource_type: str, region: str = "us-east-1") -> dict[str, tuple[str, ...]]:
    """handler -> the calls CloudFormation's resource provider makes, from the provider schema
    cfn-lint bundles (`data/schemas/providers/<region>.json` -> `resources/<id>.json`); {} for a
    type with no schema there (SAM's, custom resources)."""
    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    index_file = schemas / "providers" / f"{region}.json"
    if not index_file.is_file():
        raise ProviderSchemasMissing(
            f"{index_file} is missing: this rule reads provider schemas as cfn-lint 1.58 and newer bundle them; upgrade cfn-lint"
        )
    index = json.loads(index_file.read_text())
    if resource_type not in index:
        return {}
    schema = json.loads((schemas / "resources" / f"{index[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return {h: tuple(handlers[h].get("permissions", [])) for h in HANDLERS if h in handlers}


# API Gateway authorizes tagging as HTTP verbs on /tags: these provider names are not IAM actions.
IAM_ACTION_OF = {
    "apigateway:tagresource": "apigateway:PUT",
    "apigateway:untagresource": "apigateway:DELETE",
}


def statements(validator: Validator, document: Any) -> Iterator[tuple[int, dict[str, Any], Validator]]:
    """Each statement of a policy document, per condition branch, with its index."""
    for listed, branch in branches(validator, {"Document": document}, "Document", "Statement"):
        for index, item in enumerate(listed if isinstance(listed, list) else [listed]):
            for statement, statement_branch in branches(branch, item):
                if isinstance(statement, dict):
                    yield index, statement, statement_branch


def on_with_defaults(validator: Validator) -> bool:
    """Whether the branch's conditions hold with every parameter at its default value: what a
    deploy that sets nothing gets."""
    defaults = {
        name: str(parameter.default)
        for name, parameter in validator.context.parameters.items()
        if parameter.default is not None
    }
    return bool(validator.cfn.conditions.satisfiable(validator.context.conditions.status, defaults))
