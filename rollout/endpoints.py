"""Set AWS_WEBSOCKET_API_GATEWAY_ENDPOINT on every handler function, keeping every other variable.

Lambda's UpdateFunctionConfiguration replaces the whole variable map, so: read the current
configuration, merge, write with its RevisionId (a concurrent change makes the write fail
rather than be lost), and wait until the update has finished. Functions that already carry the
value are not touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from rollout.stacks import StageFailed

MAX_ATTEMPTS = 5
WAIT_LIMIT_SECONDS = 300


def merged(variables: dict[str, object], name: str, value: str) -> dict[str, str]:
    """Every variable kept, `name` set. Values are strings in Lambda (moto may hand back numbers
    for variables CloudFormation set from Number parameters)."""
    return {**{k: str(v) for k, v in variables.items()}, name: value}


def set_variable(
    lambda_client: Any,
    function: str,
    name: str,
    value: str,
    *,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 1.0,
) -> bool:
    """True when the function was changed (or would be, in a dry run)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        config = lambda_client.get_function_configuration(FunctionName=function)
        variables = dict(config.get("Environment", {}).get("Variables", {}))
        if variables.get(name) == value:
            return False
        if dry_run:
            return True
        _wait_until_idle(lambda_client, function, config, sleep, poll_seconds)
        request: dict[str, Any] = {
            "FunctionName": function,
            "Environment": {"Variables": merged(variables, name, value)},
        }
        if config.get("RevisionId"):
            request["RevisionId"] = config["RevisionId"]
        try:
            lambda_client.update_function_configuration(**request)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("ResourceConflictException", "PreconditionFailedException") and attempt < MAX_ATTEMPTS:
                sleep(poll_seconds * attempt)  # an update is in progress or the revision moved: re-read
                continue
            raise StageFailed(f"{function}: updating its environment failed: {code}: {error}") from None
        _wait_until_idle(lambda_client, function, None, sleep, poll_seconds)
        return True
    raise StageFailed(f"{function}: its configuration kept changing; try again")  # pragma: no cover


def _wait_until_idle(
    lambda_client: Any,
    function: str,
    config: dict[str, Any] | None,
    sleep: Callable[[float], None],
    poll_seconds: float,
) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while True:
        config = config or lambda_client.get_function_configuration(FunctionName=function)
        status = config.get("LastUpdateStatus", "Successful")
        if status == "Successful":
            return
        if status == "Failed":
            raise StageFailed(f"{function}: its last update failed: {config.get('LastUpdateStatusReason', '')}")
        if time.monotonic() > deadline:
            raise StageFailed(f"{function}: still updating after {WAIT_LIMIT_SECONDS} s")
        sleep(poll_seconds)
        config = None
