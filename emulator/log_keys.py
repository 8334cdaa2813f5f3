"""CloudWatch Logs refuses a KMS key that does not exist or is disabled (moto 5.2.x takes any
string): "If you attempt to associate a KMS key with a log group but the KMS key does not exist or
the KMS key is disabled, you receive an InvalidParameterException error" (AssociateKmsKey and
CreateLogGroup references). Enforced on CreateLogGroup (the API and a stack's create) and on a
stack's update of a log group's `KmsKeyId`, so a stack update naming such a key fails its log
group and rolls back (`UPDATE_ROLLBACK_COMPLETE`, emulator/aws_rules.py rule 3), as on AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.kms.models import kms_backends
from moto.logs.exceptions import InvalidParameterException
from moto.logs.models import LogGroup, LogsBackend

_installed = False


def key_problem(account_id: str, region_name: str, key_id: str | None) -> str | None:
    """CloudWatch Logs' refusal of `key_id` (an ARN or id), or None when it may be used."""
    if not key_id:
        return None
    keys = kms_backends[account_id][region_name]
    try:
        key = keys.describe_key(key_id)
    except (KeyError, Exception):  # moto raises NotFoundException or KeyError for an unknown id
        key = None
    if key is None or key.key_state != "Enabled":
        return f"The specified KMS key does not exist or is not allowed to be used with Arn '{key_id}'"
    return None


def _checked(account_id: str, region_name: str, key_id: str | None) -> None:
    problem = key_problem(account_id, region_name, key_id)
    if problem:
        raise InvalidParameterException(msg=problem)


def _create_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: LogsBackend, log_group_name: str, tags: dict[str, str], **kwargs: Any) -> Any:
        _checked(self.account_id, self.region_name, kwargs.get("kmsKeyId") or kwargs.get("KmsKeyId"))
        return original(self, log_group_name, tags, **kwargs)

    return create


def _update_checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def update(
        cls: type,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        _checked(account_id, region_name, cloudformation_json.get("Properties", {}).get("KmsKeyId"))
        return original(original_resource, new_resource_name, cloudformation_json, account_id, region_name)

    return update


def install() -> None:
    """Apply the rule (idempotent); after `moto_gaps.install()`, whose log-group update it wraps."""
    global _installed
    if _installed:
        return
    LogsBackend.create_log_group = _create_checked(LogsBackend.create_log_group)  # type: ignore[method-assign]
    LogGroup.update_from_cloudformation_json = classmethod(  # type: ignore[method-assign, assignment]
        _update_checked(LogGroup.update_from_cloudformation_json)
    )
    _installed = True
