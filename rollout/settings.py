"""Per-environment settings (`environments/<name>.yaml`), checked before anything changes.

Every template parameter given is checked against the template's own constraints and Rules
(the generator's validators): an unknown name, a bad value or a missing input fails here,
naming the file, the setting and what it accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.intrinsics import failed_rules
from generator.parameters import InvalidSetting, check_values, declared_in
from generator.project import Project
from generator.stages import ACCOUNT_ROLE_PARAMETER, MAX_CONSUMERS, ROLLOUT_SET_PARAMETERS, STACK_TEMPLATES
from rollout import artifacts, freshness, strategy

REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
STACK_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
KNOWN_KEYS = {
    "region", "artifacts_bucket", "stacks", "parameters", "endpoint_consumers", "bake_seconds", "migrate", "release",
}  # fmt: skip
MAX_BAKE_SECONDS = 21_600  # six hours: a bake is a watch, not a soak test
CONSUMER_PATTERN = re.compile(
    r"^([A-Za-z0-9_-]{1,64}|arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64})$"
)
# Stand-ins for what the rollout sets itself, so the Rules can be checked before it runs.
PLACEHOLDERS = {"compute": {"CodeS3Bucket": "artifacts", "CodeS3Key": "handlers/pending.zip"}}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is given twice (line {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class SettingsError(ValueError):
    """Bad or missing settings: the text says which file, which setting and what to do."""


@dataclass(frozen=True)
class EnvironmentSettings:
    name: str
    path: Path
    region: str
    artifacts_bucket: str
    stacks: dict[str, str]  # stage -> stack name
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)  # stage -> name -> value
    endpoint_consumers: tuple[str, ...] = ()  # functions outside the stacks that get the endpoint too
    bake_seconds: int = 0  # how long the bake step watches the stacks' alarms after the endpoint stage
    migrate: bool = True  # the migrate step runs (off only where the functions reach no database)
    release: strategy.Release = field(
        default_factory=strategy.Release
    )  # all at once, canary or linear (rollout/strategy.py)


def available(project: Project) -> list[str]:
    return sorted(p.stem for p in project.environments.glob("*.yaml"))


def load(name: str, *, region: str | None = None, project: Project | None = None) -> EnvironmentSettings:
    directory = (project or Project.find()).environments
    path = directory / f"{name}.yaml"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        raise SettingsError(f"unknown environment {name!r}: expected one of {known} (files in {directory})")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping of settings")
    return validate(name, path, raw, region_override=region, project=project)


def _shape(value: Any) -> str:
    return "an empty value (a YAML null)" if value is None else f"a {type(value).__name__}"


def _fail(path: Path, setting: str, problem: str) -> SettingsError:
    return SettingsError(f"{path}: {setting}: {problem}")


def validate(
    name: str, path: Path, raw: dict[str, Any], *, region_override: str | None = None, project: Project | None = None
) -> EnvironmentSettings:
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown setting; expected {', '.join(sorted(KNOWN_KEYS))}")
    for key in ("region", "artifacts_bucket"):
        if key in raw and not isinstance(raw[key], str):
            raise _fail(path, key, f"expected a single text value, not {_shape(raw[key])}")
    if region_override is not None and not REGION_PATTERN.match(region_override):
        raise SettingsError(f"--region {region_override!r} is not an AWS region name (e.g. eu-west-1)")
    region = region_override or str(raw.get("region", ""))
    if not REGION_PATTERN.match(region):
        raise _fail(
            path,
            "region",
            f"{region!r} is not an AWS region name (e.g. eu-west-1); set it or pass --region",
        )
    bucket = str(raw.get("artifacts_bucket", ""))
    if not BUCKET_PATTERN.match(bucket) or "fill-in" in bucket.lower():
        raise _fail(
            path,
            "artifacts_bucket",
            f"{bucket!r} is not an S3 bucket name; set the artifacts bucket",
        )
    stacks = raw.get("stacks") or {}
    if not isinstance(stacks, dict) or set(stacks) != set(STACK_TEMPLATES):
        raise _fail(path, "stacks", f"expected exactly {', '.join(STACK_TEMPLATES)} with a stack name each")
    for stage, stack in stacks.items():
        if not isinstance(stack, str) or not STACK_NAME_PATTERN.match(stack):
            raise _fail(path, f"stacks.{stage}", f"{stack!r} is not a CloudFormation stack name")
    if len(set(stacks.values())) != len(stacks):
        raise _fail(path, "stacks", "each stage needs its own stack")
    parameters = _parameters(path, raw.get("parameters") or {}, project or Project.find())
    consumers = _consumers(path, raw.get("endpoint_consumers") or [])
    return EnvironmentSettings(
        name,
        path,
        region,
        bucket,
        {k: str(v) for k, v in stacks.items()},
        parameters,
        consumers,
        bake_seconds(raw.get("bake_seconds", 0), f"{path}: bake_seconds"),
        _flag(path, "migrate", raw.get("migrate", True)),
        _release(path, raw.get("release")),
    )


def _release(path: Path, raw: Any) -> strategy.Release:
    try:
        return strategy.parse(raw)
    except strategy.StrategyError as error:
        raise SettingsError(f"{path}: {error}") from None


def _flag(path: Path, key: str, value: Any) -> bool:
    """true or false, nothing YAML merely reads as one (`no`, `off`, `0`, a string)."""
    if not isinstance(value, bool):
        raise _fail(path, key, f"expected true or false, not {_shape(value)} ({value!r})")
    return value


def bake_seconds(value: Any, where: str) -> int:
    """Whole seconds from 0 (no bake) to MAX_BAKE_SECONDS."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise SettingsError(f"{where}: {value!r} is not a whole number of seconds (0 skips the bake)")
    if int(value) > MAX_BAKE_SECONDS:
        raise SettingsError(
            f"{where}: {value} s is over {MAX_BAKE_SECONDS} s (six hours); watch longer with `rollout status`"
        )
    return int(value)


def _consumers(path: Path, raw: Any) -> tuple[str, ...]:
    """Function names or ARNs, each once."""
    if not isinstance(raw, list):
        raise _fail(path, "endpoint_consumers", "expected a list of Lambda function names or ARNs")
    for index, item in enumerate(raw):
        if not isinstance(item, str) or not CONSUMER_PATTERN.match(item):
            raise _fail(path, f"endpoint_consumers[{index}]", f"{item!r} is not a Lambda function name or ARN")
    if len(set(raw)) != len(raw):
        raise _fail(path, "endpoint_consumers", "lists a function twice")
    if len(raw) > MAX_CONSUMERS:
        raise _fail(path, "endpoint_consumers", f"{len(raw)} functions; at most {MAX_CONSUMERS} are served")
    return tuple(raw)


# Parameters an earlier version of the templates had in another stack: stage -> {name: its stage now}.
MOVED_PARAMETERS = {"websocket": {ACCOUNT_ROLE_PARAMETER[1]: ACCOUNT_ROLE_PARAMETER[0]}}


def stack_templates(project: Project) -> dict[str, Any]:
    """The stacks' templates as data, as the generator produces them: read from templates_out/
    when it is known to be that (the freshness record; no troposphere import, a parse kept as JSON),
    else built (a tenth of a second more)."""
    if freshness.verified(project):
        texts = {
            stem: (project.templates_out / f"{stem}.yaml").read_text(encoding="utf-8")
            for stem in STACK_TEMPLATES.values()
        }
        return {stem: artifacts.load_template(text, project.cache) for stem, text in texts.items()}
    from generator.build import build_all

    return {stem: template.to_dict() for stem, template in build_all(list(STACK_TEMPLATES.values())).items()}


def _parameters(path: Path, raw: Any, project: Project) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict) or set(raw) - {"shared", *STACK_TEMPLATES}:
        raise _fail(path, "parameters", f"expected sections shared, {', '.join(STACK_TEMPLATES)}")
    templates = stack_templates(project)
    declared_by = {stem: declared_in(template) for stem, template in templates.items()}
    result: dict[str, dict[str, str]] = {}
    shared = raw.get("shared") or {}
    for stage, stem in STACK_TEMPLATES.items():
        declared = declared_by[stem]
        own = raw.get(stage) or {}
        if not isinstance(own, dict) or not isinstance(shared, dict):
            raise _fail(path, f"parameters.{stage}", "expected a mapping of parameter names to values")
        values = {k: v for k, v in shared.items() if k in declared} | own
        for name, moved_to in MOVED_PARAMETERS.get(stage, {}).items():
            if name in own:
                raise _fail(
                    path,
                    f"parameters.{stage}.{name}",
                    f"moved to the {moved_to} stack: set it under parameters.{moved_to}",
                )
        for name in sorted(set(values) & ROLLOUT_SET_PARAMETERS[stage]):
            raise _fail(path, f"parameters.{stage}.{name}", "is set by the rollout itself; remove it")
        try:
            checked = check_values(declared, values, where=f"the {stem} template")
        except InvalidSetting as error:
            raise _fail(path, f"parameters.{stage}.{error.name}", error.reason) from None
        result[stage] = checked
    unknown_shared = sorted(set(shared) - {p for stem in STACK_TEMPLATES.values() for p in declared_by[stem]})
    if unknown_shared:
        raise _fail(path, f"parameters.shared.{unknown_shared[0]}", "no template has this parameter")
    for stage, stem in STACK_TEMPLATES.items():  # the templates' Rules (e.g. a method's inputs)
        placeholders = dict.fromkeys(ROLLOUT_SET_PARAMETERS[stage], "") | PLACEHOLDERS.get(stage, {})
        broken = failed_rules(templates[stem], placeholders | result[stage])
        if broken:
            raise _fail(path, f"parameters.{stage}", "; ".join(broken))
    keys = [name for name in ("JwtSecretArn", "JwtPublicKey") if result["compute"].get(name)]
    if len(keys) != 1:
        raise _fail(
            path,
            "parameters.compute",
            "name exactly one JWT key, JwtSecretArn (the secret holding the "
            "backend's SECURITY_JWT_SECRET) or JwtPublicKey: without one no client can authenticate",
        )
    return result
