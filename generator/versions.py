"""A published version and a `live` alias per handler function.

Everything that invokes a handler (the API's integrations, the cleanup schedule, the backend's
notify path) names the `live` alias, never `$LATEST`: a release publishes a version, the alias
moves to it, and the versions before it stay (`UpdateReplacePolicy: Retain`) for a rollback or
a weighted shift. CloudFormation publishes a new version only when the Version resource's own
properties change, so they carry what makes a release new: the code's `CodeSha256` and a digest
of the stack's other parameters (the configuration) in its `Description`.
"""

from __future__ import annotations

from troposphere import Equals, GetAtt, If, Not, Ref, Select, Split, Sub, Template
from troposphere.awslambda import Alias, AliasRoutingConfiguration, Function, Version, VersionWeight

from generator.model import ALIAS, HandlerFunction
from generator.parameters import ParameterSet
from generator.stages import SHIFT_PARAMETERS, SHIFTED_FUNCTIONS, VERSION_PARAMETERS

CODE_SHA_PARAMETER, DIGEST_PARAMETER = VERSION_PARAMETERS["compute"]
SHIFT_FROM_PARAMETER, WEIGHT_PARAMETER = SHIFT_PARAMETERS["compute"]


def add_parameters(params: ParameterSet) -> None:
    group = "Code"
    params.add(
        group,
        CODE_SHA_PARAMETER,
        "Code SHA-256",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^[A-Za-z0-9+/]{43}=$",
        Description="Base64 SHA-256 of the handlers zip (Lambda's CodeSha256): each version checks it "
        "and a new value publishes a new version. Empty: no check.",
        ConstraintDescription="empty, or a base64 SHA-256 (44 characters)",
    )
    params.add(
        group,
        DIGEST_PARAMETER,
        "Configuration digest",
        Type="String",
        Default="",
        AllowedPattern=r"^[0-9a-f]{0,64}$",
        Description="Digest of this stack's other parameters (the rollout computes it): a new value "
        "publishes a new version, so a configuration change (a variable, the memory) is released too.",
        ConstraintDescription="up to 64 lowercase hex digits",
    )
    others = len(SHIFTED_FUNCTIONS) - 1
    params.add(
        "Release",
        SHIFT_FROM_PARAMETER,
        "Shifting from versions",
        Type="String",
        Default="",
        AllowedPattern=rf"^$|^[0-9]+(,[0-9]+){{{others}}}$",
        Description="During a canary or linear release: the versions the live aliases keep serving, one per "
        f"function ({', '.join(f.logical for f in SHIFTED_FUNCTIONS)}); the new versions get {WEIGHT_PARAMETER}. "
        "Empty (the default): every alias serves this release's version alone, all at once.",
        ConstraintDescription=f"empty, or {others + 1} version numbers separated by commas",
    )
    params.add(
        "Release",
        WEIGHT_PARAMETER,
        "New version weight",
        Type="String",
        Default="0",
        AllowedPattern=r"^(0|0?\.[0-9]{1,4})$",
        Description=f"The share of invocations the new versions get while {SHIFT_FROM_PARAMETER} is set (0 to "
        "below 1; the rollout raises it step by step, then empties the versions).",
        ConstraintDescription="a number from 0 to below 1, up to 4 decimals",
    )


def add_condition(template: Template) -> None:
    template.add_condition("CodeShaGiven", Not(Equals(Ref(CODE_SHA_PARAMETER), "")))
    template.add_condition("Shifting", Not(Equals(Ref(SHIFT_FROM_PARAMETER), "")))


def version_and_alias(template: Template, function: HandlerFunction, resource: Function) -> tuple[Version, Alias]:
    """The function's version of this release and its `live` alias pointing at it."""
    version = template.add_resource(
        Version(
            f"{function.logical}Version",
            FunctionName=Ref(resource),
            CodeSha256=If("CodeShaGiven", Ref(CODE_SHA_PARAMETER), Ref("AWS::NoValue")),
            Description=Sub(f"release ${{{DIGEST_PARAMETER}}}"),
            UpdateReplacePolicy="Retain",
        )
    )
    new = GetAtt(version, "Version")
    primary: object = new
    routing: object = Ref("AWS::NoValue")
    if function in SHIFTED_FUNCTIONS:  # during a shift: the old version, and the new one by weight
        old = Select(SHIFTED_FUNCTIONS.index(function), Split(",", Ref(SHIFT_FROM_PARAMETER)))
        primary = If("Shifting", old, new)
        weights = [VersionWeight(FunctionVersion=new, FunctionWeight=Ref(WEIGHT_PARAMETER))]
        routing = If("Shifting", AliasRoutingConfiguration(AdditionalVersionWeights=weights), Ref("AWS::NoValue"))
    alias = template.add_resource(
        Alias(
            f"{function.logical}Alias",
            FunctionName=Ref(resource),
            FunctionVersion=primary,
            RoutingConfig=routing,
            Name=ALIAS,
            Description="What every caller invokes: the release's version",
        )
    )
    return version, alias


def alias_arn(function_name_sub: str) -> Sub:
    """The `live` alias ARN of a function named by a Fn::Sub string (for callers outside the stack)."""
    return Sub(
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + function_name_sub + ":" + ALIAS
    )
