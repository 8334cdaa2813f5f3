"""`rollout rollback --env NAME [--to RELEASE]`: run a recorded release again through the same
steps and the same plan (`Prepared.plan` -> `resolve()`, either engine): its handlers zip (read
back from the bucket it was deployed from; refused when it is gone), its templates (kept
content-addressed in the environment's bucket, checked against their recorded hashes) and its
stack parameters. What the rollout sets itself (the code's bucket and key, the other stack's
outputs, the consumers' roles, the account's logging role) is decided again for the account as it
is now, as on every deploy. NoEcho values were never recorded: the current settings' values are
used, and the run says so. A rollback is all at once whatever the environment's strategy (a canary
or linear shift is for new releases; the one restored has served), and its change sets leave out
the alarms already in ALARM, which are why it runs (every deploy does: rollout/steps.py).

Default `--to`: the last succeeded release before the current one (the newest that was not
declined), skipping any release identical to the current one or to one a later rollback undid: a
second rollback goes one release further back instead of undoing the first.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from generator.stages import ACCOUNT_ROLE_PARAMETER, ROLLOUT_SET_PARAMETERS, STACK_TEMPLATES
from rollout import package, releases
from rollout.aws import Aws
from rollout.factory import Orchestrator
from rollout.options import Options
from rollout.plan import PlanRefused
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.summary import Summary

MISSING = ("NoSuchKey", "404", "NotFound")


class RollbackRefused(PlanRefused):
    """The release cannot be run again as recorded; nothing was changed. The text says what to do."""


def content(release: dict[str, Any]) -> str:
    """What a release deploys (code, templates, parameters): equal content, the same release."""
    stacks = {stage: stack["parameters"] for stage, stack in release.get("stacks", {}).items()}
    templates = {stage: t["sha256"] for stage, t in release.get("templates", {}).items()}
    return json.dumps([release["artifact"]["key"], templates, stacks], sort_keys=True)


def choose(found: list[dict[str, Any]], to: str | None, environment: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the current release, the one to restore) from the history, newest first."""
    ran = [r for r in found if r["result"] != "declined"]  # a declined run executed nothing
    if not ran:
        raise RollbackRefused(f"environment {environment} has no recorded release: nothing to roll back to")
    current = ran[0]
    if to is not None:
        target = next((r for r in found if r["id"] == to), None)
        if target is None:
            raise RollbackRefused(
                f"release {to} is not in the history of {environment}: `python -m rollout history --env "
                f"{environment}` lists them"
            )
        return current, target
    undone = {r["rollback"]["of"] for r in ran if r.get("rollback")}
    skipped = {content(current)} | {content(r) for r in ran if r["id"] in undone}  # what runs, what was undone
    for candidate in ran[1:]:
        if candidate["result"] == "succeeded" and content(candidate) not in skipped:
            return current, candidate
    raise RollbackRefused(
        f"environment {environment} has no succeeded release before {current['id']} to roll back to "
        f"(`python -m rollout history --env {environment}` lists them; name one with --to)"
    )


def fetch(s3: Any, bucket: str, key: str, what: str, release_id: str) -> bytes:
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as error:
        if error.response["Error"]["Code"] in MISSING:
            raise RollbackRefused(
                f"release {release_id}: its {what} s3://{bucket}/{key} is no longer in the bucket (expired or "
                "removed), so it cannot be deployed again: choose another release with --to"
            ) from None
        raise


def restored_artifact(s3: Any, release: dict[str, Any], into: Path) -> package.Artifact:
    """The release's handlers zip, downloaded and checked against its recorded hash."""
    recorded = release["artifact"]
    body = fetch(s3, recorded["bucket"], recorded["key"], "handlers artifact", release["id"])
    if hashlib.sha256(body).hexdigest() != recorded["sha256"]:
        raise RollbackRefused(
            f"release {release['id']}: s3://{recorded['bucket']}/{recorded['key']} is not the zip it deployed "
            "(its SHA-256 differs): choose another release with --to"
        )
    path = into / recorded["key"].rsplit("/", 1)[-1]
    path.write_bytes(body)
    with zipfile.ZipFile(path) as archive:
        unzipped = sum(i.file_size for i in archive.infolist())
    name = path.stem.split("-")  # handlers-<architecture>-py<version>-<hash>
    target = package.Target(name[1], name[2].removeprefix("py")) if len(name) == 4 else package.Target()
    return package.Artifact(path, recorded["sha256"], len(body), unzipped, target)


def restored_templates(s3: Any, bucket: str, release: dict[str, Any]) -> dict[str, str]:
    """The release's stack templates (stem -> text) from the environment's bucket, hash-checked."""
    texts = {}
    for stage, template in release["templates"].items():
        text = fetch(s3, bucket, template["key"], f"{stage} template", release["id"]).decode()
        if hashlib.sha256(text.encode()).hexdigest() != template["sha256"]:
            raise RollbackRefused(
                f"release {release['id']}: s3://{bucket}/{template['key']} is not the template it deployed"
            )
        texts[STACK_TEMPLATES[stage]] = text
    return texts


def restored_parameters(
    current: EnvironmentSettings, release: dict[str, Any], report: Reporter
) -> dict[str, dict[str, str]]:
    """The release's parameters as settings: what the rollout decides itself left out (decided
    again now), NoEcho values from the current settings."""
    role_stage, role_parameter = ACCOUNT_ROLE_PARAMETER
    found: dict[str, dict[str, str]] = {}
    for stage, stack in release["stacks"].items():
        now = current.parameters.get(stage, {})
        chosen = {}
        for name, value in stack["parameters"].items():
            if name in ROLLOUT_SET_PARAMETERS[stage] or (stage, name) == (role_stage, role_parameter):
                continue
            if value == releases.MASK:
                if not now.get(name):
                    raise RollbackRefused(
                        f"release {release['id']}: {stage} parameter {name} is NoEcho, so its value was never "
                        f"recorded, and the current settings ({current.path}) give none: set it there"
                    )
                report.line("rollback", f"{stage} parameter {name} is NoEcho: the current settings' value is used")
                value = now[name]
            chosen[name] = value
        if stage == role_stage and role_parameter in now:  # an explicit choice of the settings stands
            chosen[role_parameter] = now[role_parameter]
        found[stage] = chosen
    return found


def rollback(
    settings: EnvironmentSettings,
    aws: Aws,
    report: Reporter,
    options: Options,
    run: Orchestrator,
    to: str | None = None,
) -> Summary:
    """Run the chosen release again with the engine `run`; recorded as a rollback of the current one."""
    s3 = aws.client("s3")
    current, target = choose(releases.history(s3, settings.artifacts_bucket, settings.name), to, settings.name)
    if not target.get("stacks"):
        raise RollbackRefused(f"release {target['id']} ended before its plan was made: it has nothing to deploy")
    git = target.get("git")
    commit = f", commit {git['commit'][:12]}{' (dirty)' if git['dirty'] else ''}" if git else ""
    report.line(
        "rollback",
        f"{settings.name}: from {current['id']} ({current['result']}) to {target['id']} "
        f"({target['result']}, {target['started']}{commit})",
    )
    with tempfile.TemporaryDirectory(prefix="rollback-") as folder:
        artifact = restored_artifact(s3, target, Path(folder))
        texts = restored_templates(s3, settings.artifacts_bucket, target)
        parameters = restored_parameters(settings, target, report)
        report.line(
            "rollback",
            f"handlers {artifact.s3_key}; templates "
            + ", ".join(f"{stage} {t['key']}" for stage, t in sorted(target["templates"].items())),
        )
        release = settings.release
        if release.shifts:
            report.line(
                "rollback",
                f"all at once: the environment's {release.strategy} strategy shifts new releases; a rollback "
                "returns at once to one that served (an alarm already in ALARM is not its rollback trigger)",
            )
            release = replace(release, strategy="all-at-once", percent=0, seconds=0)
        restoring = replace(
            options,
            build_package=lambda *_: artifact,
            templates=texts,
            rollback={"of": current["id"], "to": target["id"]},
        )
        return run(replace(settings, parameters=parameters, release=release), aws, report, restoring)
