"""The one place an expected failure becomes what the release engineer reads: a clear message,
the documented exit code, and, under `--json`, a JSON error object on stdout.

Exit codes: 0 done (or nothing to do), 1 a stage failed or AWS refused a call, 2 bad usage,
settings or set-up (nothing changed), 3 declined at a question (nothing executed), 130
interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import (
    ClientError,
    ConfigParseError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from emulator import EmulatorUnavailable
from rollout import package, settings
from rollout.aws import MAX_ATTEMPTS, READ_TIMEOUT_SECONDS, CredentialsError
from rollout.bake import AlarmFired
from rollout.plan import PlanRefused
from rollout.preflight import PreflightFailed
from rollout.stacks import Declined, StageFailed

DONE, FAILED, USAGE, DECLINED, INTERRUPTED = 0, 1, 2, 3, 130


@dataclass(frozen=True)
class Failure:
    exit_code: int
    kind: str
    message: str
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "result": "declined" if self.exit_code == DECLINED else "failed",
            "error": {"kind": self.kind, "message": self.message, "details": self.details, "exit_code": self.exit_code},
        }


def explain(error: BaseException) -> Failure | None:
    """The failure an expected error means, or None for a bug (which should show its traceback)."""
    if isinstance(error, settings.SettingsError | CredentialsError | EmulatorUnavailable):
        return Failure(USAGE, "settings", str(error))
    if isinstance(error, PreflightFailed):
        return Failure(error.exit_code, "preflight", str(error))
    if isinstance(error, PlanRefused):
        return Failure(USAGE, "preflight", str(error))
    if isinstance(error, Declined):
        return Failure(DECLINED, "declined", f"{error}: you declined, nothing was executed")
    if isinstance(error, AlarmFired):  # the release is live: the advice is a rollback (rollout/cli.py)
        return Failure(FAILED, "bake", str(error), error.details)
    if isinstance(error, StageFailed):
        return Failure(FAILED, "stage", str(error), error.details)
    if isinstance(error, package.PackagingError):
        return Failure(FAILED, "package", str(error))
    if isinstance(error, ReadTimeoutError):  # connected, and no answer came: not a network that is down
        endpoint = str(getattr(error, "kwargs", {}).get("endpoint_url", "AWS")).rstrip("/")
        return Failure(
            USAGE,
            "network",
            f"{endpoint} accepted the connection but sent no answer within the read timeout "
            f"(by default {READ_TIMEOUT_SECONDS} s, each of {MAX_ATTEMPTS} attempts): check --endpoint-url "
            "(is it an AWS endpoint?) and any proxy in between",
        )
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        endpoint = getattr(error, "kwargs", {}).get("endpoint_url", "AWS")
        return Failure(USAGE, "network", f"cannot reach {endpoint}: check the network, the region and --endpoint-url")
    if isinstance(error, NoCredentialsError | PartialCredentialsError | NoRegionError | ProfileNotFound):
        return Failure(
            USAGE,
            "credentials",
            f"{error}: configure credentials (aws configure, AWS_PROFILE or --profile, or environment variables)",
        )
    if isinstance(error, ConfigParseError):
        return Failure(
            USAGE, "aws-config", f"{error}: fix the AWS config file (~/.aws/config) or point AWS_CONFIG_FILE elsewhere"
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        return Failure(FAILED, "aws", f"AWS refused {error.operation_name}: {code}: {message}")
    if isinstance(error, OSError):
        return Failure(USAGE, "file", f"{error.filename or ''}: {error.strerror or error}".lstrip(": "))
    return None
