"""Lambda's Invoke runs the function's deployed zip for real (moto would start a Docker
container): each function version keeps warm execution environments (`sandbox`), re-used
across invocations, replaced when its code or configuration changes, and stopped when the
function is deleted, the emulator is reset or it stops. `RequestResponse` waits for the result;
`Event` answers 202 at once and runs in the background (no retries here); `DryRun` runs nothing.

Concurrency as Lambda's: each concurrent invocation gets an environment of its own (a process,
so a handler's database connection is its environment's), up to the function's reserved
concurrency (PutFunctionConcurrency, ReservedConcurrentExecutions) over all its versions; beyond
it Invoke answers 429 TooManyRequestsException, Reason
ReservedFunctionConcurrentInvocationLimitExceeded (an `Event` invocation waits for a free
environment instead, as Lambda's queue retries it). An environment idle for `idle_seconds`
(EMULATOR_LAMBDA_IDLE_SECONDS, 300 by default) is reclaimed: its process ends, and with it its
connections.

Errors have Lambda's shape: `X-Amz-Function-Error: Unhandled` with `{errorMessage, errorType,
requestId, stackTrace}` from the runtime, `Sandbox.Timedout` for a timeout and
`Runtime.ExitError` for a runtime that exited. A function's output goes to its log group."""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.core.exceptions import JsonRESTError
from moto.logs.models import logs_backends
from moto.moto_api._internal.models import MotoAPIBackend

from emulator import metrics, runtime_layer
from emulator.sandbox import ExecutionEnvironment, FunctionSpec, Result

LOG = logging.getLogger(__name__)
_installed = False
IDLE_SECONDS = float(os.environ.get("EMULATOR_LAMBDA_IDLE_SECONDS", "300"))
THROTTLE_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"


class Throttled(JsonRESTError):
    """Lambda's answer to an invocation beyond the function's reserved concurrency."""

    code = 429

    def __init__(self, function_name: str) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")
        self.function_name = function_name
        self.description = json.dumps(
            {"__type": self.error_type, "message": self.message, "Reason": THROTTLE_REASON, "Type": "User"}
        )


class Functions:
    """The running environments of every function version, by (function ARN, version)."""

    def __init__(self, reach: dict[str, str]) -> None:
        self.reach = reach
        self._root = Path(tempfile.mkdtemp(prefix="emulator-lambda-"))
        self.runtime_dir = runtime_layer.build(self._root / "runtime")
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str], tuple[str, list[ExecutionEnvironment]]] = {}
        self._warned: set[str] = set()
        self.idle_seconds = IDLE_SECONDS
        self._stopping = threading.Event()
        threading.Thread(target=self._reclaim_loop, name="lambda-reclaimer", daemon=True).start()

    def invoke(self, function: LambdaFunction, event: bytes, wait: bool = False) -> Result:
        """Run `event` in a free environment; beyond the reserved concurrency raise Throttled, or
        with `wait` (an asynchronous invocation) wait for one."""
        spec = spec_of(function)
        self._warn_about_architecture(function)
        while True:
            try:
                environment = self._acquire(spec, function)
                break
            except Throttled:
                where = {"FunctionName": spec.function_name}
                metrics.record(function.account_id, function.region, "AWS/Lambda", "Throttles", where, 1)
                if not wait or self._stopping.wait(0.05):
                    raise
        started = time.monotonic()
        try:
            result = environment.invoke(event)
        finally:
            environment.last_used = time.monotonic()
            environment.busy = False
        elapsed_ms = (time.monotonic() - started) * 1000
        failed = bool(result.function_error)
        metrics.lambda_invocation(function.account_id, function.region, spec.function_name, failed, elapsed_ms)
        return result

    def prewarm(self, function: LambdaFunction, count: int, event: bytes = b"{}") -> int:
        """Start up to `count` environments of the function ahead of traffic (as provisioned
        concurrency does), each through its init and one `event`; how many are now warm."""
        spec, environments = spec_of(function), []
        for _ in range(count):
            try:
                environments.append(self._acquire(spec, function))
            except Throttled:
                break
        threads = [threading.Thread(target=e.invoke, args=(event,)) for e in environments]
        for thread in threads:
            thread.start()
        for thread, environment in zip(threads, environments, strict=True):
            thread.join()
            environment.last_used, environment.busy = time.monotonic(), False
        return len(environments)

    def busy(self, function_arn: str) -> int:
        """Environments of the function (any version) running an invocation now."""
        with self._lock:
            return sum(e.busy for e in self._of(function_arn))

    def environments(self, function_arn: str) -> int:
        """Environments of the function (any version), warm or busy."""
        with self._lock:
            return len(self._of(function_arn))

    def _of(self, function_arn: str) -> list[ExecutionEnvironment]:
        base = _unqualified(function_arn)
        return [e for (arn, _), (_, envs) in self._pools.items() if _unqualified(arn) == base for e in envs]

    def _acquire(self, spec: FunctionSpec, function: LambdaFunction) -> ExecutionEnvironment:
        """An idle environment of this revision, or a new one (Lambda scales out the same way)
        while the function's reserved concurrency allows."""
        key, revision = (spec.function_arn, spec.version), revision_of(spec, function)
        limit = reserved_concurrency(function)
        with self._lock:
            current, environments = self._pools.get(key, (revision, []))
            if current != revision:
                for old in environments:
                    old.stop()
                environments = []
            self._pools[key] = (revision, environments)
            if limit is not None and sum(e.busy for e in self._of(spec.function_arn)) >= limit:
                raise Throttled(spec.function_name)
            for environment in environments:
                if not environment.busy:
                    environment.busy = True
                    return environment
            region = function.region
            environment = ExecutionEnvironment(
                spec, self.reach, self.runtime_dir, region, _logger(function.account_id, region)
            )
            environment.busy = True
            environments.append(environment)
            return environment

    def _warn_about_architecture(self, function: LambdaFunction) -> None:
        architecture = (getattr(function, "architectures", None) or ["x86_64"])[0]
        if architecture != "x86_64" and function.function_arn not in self._warned:
            self._warned.add(function.function_arn)
            LOG.warning(
                "%s is built for %s and runs on x86_64 here: compiled extensions in its zip for %s "
                "do not load (pure-Python fallbacks do)",
                function.function_name,
                architecture,
                architecture,
            )

    def _reclaim_loop(self) -> None:
        while not self._stopping.wait(min(1.0, max(self.idle_seconds / 4, 0.05))):
            self.reclaim_idle()

    def reclaim_idle(self) -> None:
        """Stop environments idle longer than `idle_seconds`, as Lambda reclaims them."""
        cutoff, idle = time.monotonic() - self.idle_seconds, []
        with self._lock:
            for key, (revision, environments) in list(self._pools.items()):
                keep = [e for e in environments if e.busy or e.last_used > cutoff]
                idle += [e for e in environments if e not in keep]
                self._pools[key] = (revision, keep)
        for environment in idle:
            environment.stop()

    def stop_function(self, function_arn: str) -> None:
        with self._lock:
            for key in [key for key in self._pools if key[0] == function_arn]:
                for environment in self._pools.pop(key)[1]:
                    environment.stop()

    def stop_all(self, final: bool = False) -> None:
        if final:
            self._stopping.set()
        with self._lock:
            pools, self._pools = self._pools, {}
        for _, environments in pools.values():
            for environment in environments:
                environment.stop()


def spec_of(function: LambdaFunction) -> FunctionSpec:
    logging_config = getattr(function, "logging_config", None) or {}
    return FunctionSpec(
        function_name=function.function_name,
        function_arn=function.function_arn,
        version=str(function.version),
        handler=str(function.handler or ""),
        runtime=str(function.run_time or "python3.14"),
        timeout_seconds=float(function.timeout or 3),
        memory_mb=int(function.memory_size or 128),
        code=function.code_bytes,
        variables=dict(function.environment_vars or {}),
        log_group=logging_config.get("LogGroup") or f"/aws/lambda/{function.function_name}",
        log_format=logging_config.get("LogFormat") or "Text",
    )


def reserved_concurrency(function: LambdaFunction) -> int | None:
    """The function's reserved concurrency (None: unreserved), as PutFunctionConcurrency set it."""
    value = getattr(function, "reserved_concurrency", None)
    return None if value is None or value == "" else int(value)


def _unqualified(function_arn: str) -> str:
    return ":".join(function_arn.split(":")[:7])


def revision_of(spec: FunctionSpec, function: LambdaFunction) -> str:
    """Changes with the code, the configuration, and when the function is created again."""
    instance = function.__dict__.setdefault("_emulator_instance", uuid.uuid4().hex)
    fields = {**spec.__dict__, "code": hashlib.sha256(spec.code).hexdigest(), "instance": instance}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _logger(account_id: str, region: str) -> Any:
    def log(group: str, stream: str, line: str) -> None:
        try:
            backend = logs_backends[account_id][region]
            backend.ensure_log_group(group)
            if stream not in backend.groups[group].streams:
                backend.create_log_stream(group, stream)
            backend.put_log_events(group, stream, [{"timestamp": int(time.time() * 1000), "message": line}])
        except Exception:  # the function's run must not depend on its logs
            LOG.debug("could not log %r to %s", line, group, exc_info=True)

    return log


_running: list[Functions] = []  # one per running emulator in this process, innermost last


def start(reach: dict[str, str]) -> Functions:
    """Invocations from now on run for real; functions reach the emulator by the variables in
    `reach`. Emulators in one process share moto's state: the innermost running one runs them."""
    functions = Functions(reach)
    _running.append(functions)
    return functions


def stop(functions: Functions) -> None:
    if functions in _running:
        _running.remove(functions)
    functions.stop_all(final=True)


def invoke(function: LambdaFunction, event: bytes) -> Result:
    """Run one event through the innermost running emulator's runtime (what Invoke does)."""
    if not _running:
        raise RuntimeError("the emulator's Lambda runtime is not running: start it with running_emulator()")
    return _running[-1].invoke(function, event)


def _invoke(self: LambdaFunction, body: str | bytes | None, request_headers: Any, response_headers: Any) -> bytes:
    """moto's LambdaFunction.invoke, answered by the function's own code."""
    if not _running:
        raise RuntimeError("the emulator's Lambda runtime is not running: start it with running_emulator()")
    functions = _running[-1]
    event = body.encode() if isinstance(body, str) else (body or b"")
    invocation_type = request_headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        run = contextvars.copy_context().run  # its metrics keep the alias it came through
        threading.Thread(target=run, args=(functions.invoke, self, event or b"{}", True), daemon=True).start()
        return b""
    result = functions.invoke(self, event or b"{}")
    if result.function_error:
        response_headers["x-amz-function-error"] = result.function_error
    response_headers["x-amz-executed-version"] = str(self.version)
    return result.payload


def _deleted_and_stopped(original: Any) -> Any:
    def delete(self: LambdaBackend, function_name: str, qualifier: str | None = None) -> None:
        arn = self.get_function(function_name, qualifier).function_arn
        original(self, function_name, qualifier)
        for functions in _running:
            functions.stop_function(arn)

    return delete


def _reset_and_stopped(original: Any) -> Any:
    def reset(self: MotoAPIBackend) -> None:
        original(self)
        for functions in _running:
            functions.stop_all()

    return reset


def install() -> None:
    """Patch moto (idempotent)."""
    global _installed
    if _installed:
        return
    LambdaFunction.invoke = _invoke  # type: ignore[method-assign]
    LambdaBackend.delete_function = _deleted_and_stopped(LambdaBackend.delete_function)  # type: ignore[method-assign]
    MotoAPIBackend.reset = _reset_and_stopped(MotoAPIBackend.reset)  # type: ignore[method-assign]
    _installed = True
