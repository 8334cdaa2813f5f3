"""One Lambda execution environment: a process running a function's deployed zip under AWS's
Runtime Interface Client against its own emulated Runtime API, kept warm between invocations.
It answers as Lambda does: the handler's result, its error, an init error, a timeout (the
process is killed) or a runtime that exited."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emulator.runtime_api import Invocation, RuntimeApi

INIT_SECONDS = 10.0  # Lambda's limit on an on-demand environment's init phase
UNHANDLED = "Unhandled"


@dataclass(frozen=True)
class FunctionSpec:
    """What an environment is built from: one revision of one function version."""

    function_name: str
    function_arn: str
    version: str
    handler: str
    runtime: str
    timeout_seconds: float
    memory_mb: int
    code: bytes
    variables: dict[str, str]
    log_group: str
    log_format: str = "Text"


@dataclass(frozen=True)
class Result:
    """What Invoke answers: the payload, and `function_error` ("Unhandled") when it failed."""

    payload: bytes
    function_error: str | None = None


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class ExecutionEnvironment:
    """Started on its first invocation; one invocation at a time (the pool makes more)."""

    def __init__(
        self,
        spec: FunctionSpec,
        reach: dict[str, str],
        runtime_dir: Path,
        region: str,
        log: Callable[[str, str, str], None],
    ) -> None:
        self.spec, self.reach, self.runtime_dir, self.region = spec, reach, runtime_dir, region
        self.log = log  # (log group, log stream, line) -> None
        self.log_stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{spec.version}]{os.urandom(16).hex()}"
        self.busy = False
        self.last_used = time.monotonic()  # when its last invocation ended (Lambda reclaims idle ones)
        self._root = Path(tempfile.mkdtemp(prefix=f"lambda-{spec.function_name}-"))
        self._api: RuntimeApi | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def environment(self, api_address: str, task_root: Path) -> dict[str, str]:
        """The variables Lambda's python runtime sets; the function's own come first, so none of
        them can point the code at AWS or at the emulator's own credentials. `reach` routes the
        code's AWS calls to the emulator (see emulator/https_proxy.py)."""
        spec = self.spec
        return {
            **{k: str(v) for k, v in spec.variables.items()},
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": f"{task_root}:{self.runtime_dir}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": str(task_root),
            "LAMBDA_RUNTIME_DIR": str(self.runtime_dir),
            "AWS_LAMBDA_RUNTIME_API": api_address,
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "AWS_LAMBDA_LOG_FORMAT": spec.log_format,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **self.reach,
            "AWS_ACCESS_KEY_ID": "lambda-emulated",
            "AWS_SECRET_ACCESS_KEY": "lambda-emulated",
            "AWS_SESSION_TOKEN": "lambda-emulated",
        }

    def _start(self) -> None:
        self.stop_process()
        task_root = self._root / "task"
        if not task_root.exists():
            with zipfile.ZipFile(io.BytesIO(self.spec.code)) as archive:
                archive.extractall(task_root)
        self._api = RuntimeApi()
        # -S: no site-packages of the emulator's interpreter; -B: nothing written into the task root
        self._process = subprocess.Popen(
            [sys.executable, "-S", "-B", "-m", "awslambdaric", self.spec.handler],
            cwd=task_root,
            env=self.environment(self._api.address, task_root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends whatever it started too
        )
        threading.Thread(target=self._forward_output, args=(self._process,), daemon=True).start()

    def _forward_output(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log(self.spec.log_group, self.log_stream, line.decode(errors="replace").rstrip("\r\n"))

    def invoke(self, event: bytes) -> Result:
        """Run one event to its end (or its timeout); starts the process when it is not running."""
        if not self.alive:
            self._start()
        assert self._api is not None and self._process is not None
        api, process = self._api, self._process
        invocation = Invocation(event, self.spec.function_arn, self.spec.timeout_seconds)
        api.submit(invocation)
        submitted = time.monotonic()
        while not invocation.answered.wait(0.02):
            if api.init_error is not None or process.poll() is not None:
                return self._failed_start_or_exit(invocation, api, process)
            started = invocation.dispatched_at
            if started is None and time.monotonic() - submitted > INIT_SECONDS + self.spec.timeout_seconds:
                started = submitted  # init never finished: Lambda counts it against the timeout
            if started is not None and time.monotonic() - started > self.spec.timeout_seconds:
                self.stop_process()
                message = f"RequestId: {invocation.request_id} Error: Task timed out after {self.spec.timeout_seconds:.2f} seconds"
                self.log(self.spec.log_group, self.log_stream, message)
                return Result(error_payload("Sandbox.Timedout", message), UNHANDLED)
        assert invocation.payload is not None
        return Result(invocation.payload, UNHANDLED if invocation.error_type else None)

    def _failed_start_or_exit(
        self, invocation: Invocation, api: RuntimeApi, process: subprocess.Popen[bytes]
    ) -> Result:
        if not invocation.answered.is_set() and api.init_error is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)  # the runtime posts its init error, then exits
        if invocation.answered.is_set():
            assert invocation.payload is not None
            return Result(invocation.payload, UNHANDLED if invocation.error_type else None)
        self.stop_process()  # Lambda starts a new environment for the next event
        if api.init_error is not None:
            return Result(api.init_error, UNHANDLED)
        code = process.returncode
        status = f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: {status}"
        return Result(error_payload("Runtime.ExitError", message), UNHANDLED)

    def stop_process(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None
        if self._api is not None:
            self._api.stop()
            self._api = None

    def stop(self) -> None:
        """End the process and remove the unpacked code."""
        self.stop_process()
        shutil.rmtree(self._root, ignore_errors=True)
