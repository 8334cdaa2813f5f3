"""Merge variables into a Lambda function's environment, keeping every other variable.

Lambda's UpdateFunctionConfiguration replaces the whole variable map, so: read the current
configuration, merge, write with its RevisionId (a concurrent change makes the write fail rather
than be lost), and let the caller wait until the update has finished (`settled`). A function that
already carries the values is not touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from rollout.stacks import StageFailed

MAX_ATTEMPTS = 5


def merged(variables: dict[str, object], wanted: dict[str, str]) -> dict[str, str]:
    """Every variable kept, `wanted` set. Values are strings in Lambda (moto may hand back numbers
    for variables CloudFormation set from Number parameters)."""
    return {**{k: str(v) for k, v in variables.items()}, **wanted}


def set_variables(
    lambda_client: Any, function: str, wanted: dict[str, str], *, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """True when the function was changed (its update may still be in progress: see `settled`)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        config = lambda_client.get_function_configuration(FunctionName=function)
        environment = config.get("Environment", {})
        if environment.get("Error") or (config.get("KMSKeyArn") and "Variables" not in environment):
            # Writing now would replace the variables this caller could not read with just ours.
            reason = environment.get("Error", {}).get("Message", "its variables were not returned")
            raise StageFailed(
                f"{function}: its environment cannot be read ({reason}); nothing was written. Grant "
                f"kms:Decrypt on {config.get('KMSKeyArn', 'its key')} to the role running the rollout"
            )
        variables = dict(environment.get("Variables", {}))
        if all(variables.get(name) == value for name, value in wanted.items()):
            return False
        request: dict[str, Any] = {"FunctionName": function, "Environment": {"Variables": merged(variables, wanted)}}
        if config.get("RevisionId"):
            request["RevisionId"] = config["RevisionId"]
        try:
            lambda_client.update_function_configuration(**request)
            return True
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("ResourceConflictException", "PreconditionFailedException") and attempt < MAX_ATTEMPTS:
                sleep(attempt)  # an update is in progress or the revision moved: re-read
                continue
            raise StageFailed(f"{function}: updating its environment failed: {code}: {error}") from None
    raise StageFailed(f"{function}: its configuration kept changing; try again")  # pragma: no cover


def settled(lambda_client: Any, function: str) -> bool:
    """True once the function's last update has finished; a failed update fails the step."""
    config = lambda_client.get_function_configuration(FunctionName=function)
    status = config.get("LastUpdateStatus", "Successful")
    if status == "Failed":
        raise StageFailed(f"{function}: its last update failed: {config.get('LastUpdateStatusReason', '')}")
    return bool(status == "Successful")
