"""Lambda versions and aliases as CloudFormation and Lambda keep them (moto 5.2.x lacks them).

- `AWS::Lambda::Version`: moto publishes one on create but gives no `Ref` (the version's ARN), no
  `GetAtt Version`, ignores `CodeSha256` and `Description`, and an update (CloudFormation replaces
  a version whose properties change) publishes nothing. Here a create or a replacement publishes
  from `$LATEST` (refused when `CodeSha256` is not the code's, as Lambda refuses it), and the old
  version stays when the resource says `UpdateReplacePolicy: Retain`.
- A published version keeps the code and configuration of its moment: moto's version is a shallow
  copy of `$LATEST`, sharing its environment map; here the version holds its own copies.
- `AWS::Lambda::Alias` is skipped by moto's CloudFormation: modelled here (Ref: the alias ARN),
  `RoutingConfig` in the API's shape.
- Invoking an alias with `RoutingConfig.AdditionalVersionWeights` runs the primary version or an
  additional one chosen per invocation by weight (moto always runs the primary). `chooser` is the
  seam: a function of the weights list that answers the version to run (random by default).
- Invoke's `Qualifier` (a version or alias named beside the function's name) is honoured: moto
  reads it under another name and ran `$LATEST`.
- An update rolled back returns to the versions it replaced (moto would publish yet another).
- A version an alias serves (primary or weighted) cannot be deleted, as Lambda refuses it.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable
from typing import Any

from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
from moto.awslambda.models import LambdaBackend, LambdaFunction, LambdaStorage, LambdaVersion, lambda_backends
from moto.awslambda.responses import LambdaResponse
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel

from emulator import aws_rules, metrics
from emulator.moto_gaps import _references, in_dependency_order

_installed = False
_rolling_back = False  # a stack operation is being rolled back (aws_rules._roll_back)
Weights = list[tuple[str, float]]  # (version, weight): the primary first, with 1 - the others' weights


def random_choice(weights: Weights) -> str:
    """Lambda's choice: each invocation independently, by weight."""
    versions, shares = zip(*weights, strict=True)
    return str(random.choices(versions, weights=shares)[0])


chooser: Callable[[Weights], str] = random_choice


def _backend(account_id: str, region_name: str) -> LambdaBackend:
    return lambda_backends[account_id][region_name]


def alias_weights(primary: str, routing_config: Any) -> Weights:
    """The versions an alias sends invocations to, with their shares."""
    extra = {str(k): float(v) for k, v in ((routing_config or {}).get("AdditionalVersionWeights") or {}).items()}
    return [(str(primary), 1.0 - sum(extra.values())), *extra.items()]


def _publish(properties: dict[str, Any], account_id: str, region_name: str) -> LambdaFunction:
    backend = _backend(account_id, region_name)
    latest = backend.get_function(properties["FunctionName"])
    expected = properties.get("CodeSha256")
    if expected and expected != latest.code_sha_256:
        raise InvalidParameterValueException(
            f"CodeSha256 ({expected}) is different from current CodeSha256 in $LATEST ({latest.code_sha_256}). "
            "Please try again with the CodeSha256 in $LATEST."
        )
    latest.code_or_config_updated = True  # a new resource is a new version (the properties changed)
    published = backend.publish_version(latest.function_name, properties.get("Description", ""))
    if published is None:
        raise InvalidParameterValueException(f"cannot publish a version of {latest.function_name}")
    published.environment_vars = copy.deepcopy(latest.environment_vars)
    published.__dict__["_emulator_instance"] = latest.__dict__.get("_emulator_instance")
    return published


class PublishedVersion:
    """What CloudFormation answers about a version it published (moto's model answers nothing)."""

    def __init__(self, function: LambdaFunction) -> None:
        self.function = function
        self.version = str(function.version)
        self.previous: PublishedVersion | None = None  # the version this one replaced (for a rollback)

    @property
    def physical_resource_id(self) -> str:
        return str(self.function.function_arn)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Version", "FunctionArn")

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Version":
            return self.version
        if attribute_name == "FunctionArn":
            return self.function.function_arn
        raise UnformattedGetAttTemplateException()

    def is_created(self) -> bool:
        return True


def _version_created(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **_: Any
) -> PublishedVersion:
    return PublishedVersion(_publish(cloudformation_json["Properties"], account_id, region_name))


def _version_replaced(
    cls: type,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> PublishedVersion:
    """Every property of a version is create-only: a change is a new version; the old one is
    deleted unless the resource retains it on replacement. Rolling an update back, CloudFormation
    returns to the version it replaced (it publishes none)."""
    properties = cloudformation_json["Properties"]
    previous = getattr(original_resource, "previous", None)
    returning = isinstance(previous, PublishedVersion) and previous.function.description == properties.get(
        "Description", ""
    )
    if _rolling_back and returning:
        return previous  # type: ignore[return-value]
    published = PublishedVersion(_publish(properties, account_id, region_name))
    published.previous = original_resource if isinstance(original_resource, PublishedVersion) else None
    retained = cloudformation_json.get("UpdateReplacePolicy") == "Retain"
    if (
        not retained
        and isinstance(original_resource, PublishedVersion)
        and original_resource.version != published.version
    ):
        _delete_version(original_resource, account_id, region_name)
    return published


def _delete_version(resource: PublishedVersion, account_id: str, region_name: str) -> None:
    with contextlib.suppress(Exception):  # the function went first (a stack's delete): its versions went with it
        _backend(account_id, region_name).delete_function(resource.function.function_name, resource.version)


def _version_deleted(cls: type, resource_name: str, cloudformation_json: dict[str, Any], *args: Any) -> None:
    """moto calls this with the physical id; the function's delete removes its versions anyway."""


class FunctionAlias(CloudFormationModel):
    """`AWS::Lambda::Alias`, backed by moto's Lambda aliases."""

    def __init__(self, alias: Any, function_name: str) -> None:
        self.alias, self.function_name = alias, function_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Alias"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "AliasArn"

    @property
    def physical_resource_id(self) -> str:
        return str(self.alias.arn)

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "AliasArn":
            return self.alias.arn
        raise UnformattedGetAttTemplateException()

    @staticmethod
    def _arguments(properties: dict[str, Any]) -> dict[str, Any]:
        weights = (properties.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or []
        return {
            "function_version": str(properties["FunctionVersion"]),
            "description": properties.get("Description", ""),
            "routing_config": {
                "AdditionalVersionWeights": {str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights}
            }
            if weights
            else {},
        }

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **_: Any
    ) -> FunctionAlias:
        props = cloudformation_json["Properties"]
        backend = _backend(account_id, region_name)
        name = backend.get_function(props["FunctionName"]).function_name
        alias = backend.create_alias(name=props["Name"], function_name=name, **cls._arguments(props))
        return cls(alias, name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: FunctionAlias,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FunctionAlias:
        props = cloudformation_json["Properties"]
        backend = _backend(account_id, region_name)
        alias = backend.update_alias(
            name=props["Name"], function_name=original_resource.function_name, **cls._arguments(props)
        )
        return cls(alias, original_resource.function_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        arn = str(resource_name)
        if arn.startswith("arn:"):
            function, name = arn.split(":")[6], arn.split(":")[7]
            with contextlib.suppress(Exception):  # the function went first: its aliases went with it
                _backend(account_id, region_name).delete_alias(name, function)

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(Exception):  # the function went first: its aliases went with it
            _backend(account_id, region_name).delete_alias(self.alias.name, self.function_name)

    def is_created(self) -> bool:
        return True


def _with_dependents_of_new_versions(original: Callable[..., Any]) -> Callable[..., Any]:
    """A version whose properties change is replaced (a new number): whatever references it (the
    alias's FunctionVersion) changes with it, as CloudFormation resolves the new value. And a
    parameter named only inside a `Fn::Sub` (a version's Description) changes the version too:
    moto looks for `Ref` alone."""

    def diff(self: parsing.ResourceMap, other_template: dict[str, Any], parameters: Any = None) -> dict[str, Any]:
        actions = original(self, other_template, parameters)
        new = other_template["Resources"]
        changed = {p for p in parameters or {} if self.input_parameters.get(p) != parameters[p]}
        for name, resource in new.items():  # only versions: moto cannot update some others (an IAM policy)
            is_version = resource.get("Type") == "AWS::Lambda::Version"
            known = name in self._resource_json_map and name not in actions["Modify"]
            if is_version and known and _references(resource) & changed:
                actions["Modify"].append(name)
        replaced = {n for n in actions["Modify"] if new[n].get("Type") == "AWS::Lambda::Version"}
        for name, resource in new.items():
            if name not in actions["Modify"] and name not in actions["Add"] and _references(resource) & replaced:
                actions["Modify"].append(name)
        order = list(in_dependency_order(new))  # a version before the alias that names it
        actions["Modify"].sort(key=order.index)
        return actions

    return diff


def invoked(storage: LambdaStorage, name: str, qualifier: str | None) -> tuple[LambdaFunction, str]:
    """The version one invocation runs (an alias's primary or one of its weighted versions), and
    the alias it came through ("" : none)."""
    function = storage.get_function_by_name_or_arn_with_qualifier(name, qualifier)
    parts = name.split(":")
    if name.startswith("arn:") and len(parts) > 7:
        qualifier = parts[7]
    elif not name.startswith("arn:") and len(parts) == 2:
        qualifier = parts[1]
    alias = storage._get_function_aliases(function.function_name).get(qualifier or "")
    if alias is None:
        return function, ""
    if not alias.routing_config:
        return function, alias.name
    version = chooser(alias_weights(alias.function_version, alias.routing_config))
    return storage.get_function_by_name_or_arn_with_qualifier(function.function_name, version), alias.name


def through(function: LambdaFunction, alias: str) -> contextlib.AbstractContextManager[None]:
    """Around an invocation: its metrics by alias and executed version too, when it came through one."""
    if not alias:
        return contextlib.nullcontext()
    return metrics.through_alias(f"{function.function_name}:{alias}", str(function.version))


def _invoke_weighted(
    self: LambdaBackend, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> Any:
    """moto's Invoke, running the version the alias's weights choose (its metrics by alias and
    executed version too)."""
    fn, alias = invoked(self._lambdas, function_name, qualifier)
    with through(fn, alias):
        payload = fn.invoke(body, headers, response_headers)
    response_headers["Content-Length"] = str(len(payload))
    return payload


def _invoke_qualified(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto reads Invoke's `qualifier` in lower case; the API (and boto3) send `Qualifier`, so
    moto ran $LATEST whatever version the caller named."""

    def invoke(self: LambdaResponse) -> Any:
        if "Qualifier" in self.querystring and "qualifier" not in self.querystring:
            self.querystring["qualifier"] = self.querystring["Qualifier"]
        return original(self)

    return invoke


def _returning_to_replaced_versions(original: Callable[..., Any]) -> Callable[..., Any]:
    def roll_back(*args: Any, **kwargs: Any) -> Any:
        global _rolling_back
        _rolling_back = True
        try:
            return original(*args, **kwargs)
        finally:
            _rolling_back = False

    return roll_back


def _refusing_served_versions(original: Callable[..., Any]) -> Callable[..., Any]:
    """Lambda refuses to delete a version an alias serves (moto deletes it and leaves the alias
    pointing at nothing)."""

    def delete_function(self: LambdaBackend, function_name: str, qualifier: str | None = None) -> None:
        if qualifier and qualifier != "$LATEST":
            aliases = self._lambdas._get_function_aliases(function_name)
            using = sorted(
                a.name
                for a in aliases.values()
                if qualifier in {version for version, _ in alias_weights(a.function_version, a.routing_config)}
            )
            if using:
                raise LambdaClientError(
                    "ResourceConflictException",
                    f"Unable to delete version because the following aliases reference it: [{', '.join(using)}]",
                )
        original(self, function_name, qualifier)

    return delete_function


def install() -> None:
    """Apply (idempotent); the alias model registers on import."""
    global _installed
    if _installed:
        return
    LambdaVersion.create_from_cloudformation_json = classmethod(_version_created)  # type: ignore[method-assign,assignment]
    LambdaVersion.update_from_cloudformation_json = classmethod(_version_replaced)  # type: ignore[method-assign,assignment]
    LambdaVersion.delete_from_cloudformation_json = classmethod(_version_deleted)  # type: ignore[method-assign,assignment]
    LambdaBackend.invoke = _invoke_weighted  # type: ignore[method-assign]
    LambdaBackend.delete_function = _refusing_served_versions(LambdaBackend.delete_function)  # type: ignore[method-assign]
    LambdaResponse.invoke = _invoke_qualified(LambdaResponse.invoke)  # type: ignore[method-assign]
    aws_rules._roll_back = _returning_to_replaced_versions(aws_rules._roll_back)
    parsing.ResourceMap.build_resource_diff = _with_dependents_of_new_versions(  # type: ignore[method-assign]
        parsing.ResourceMap.build_resource_diff
    )
    _installed = True
