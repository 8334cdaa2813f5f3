"""The Lambda Runtime API one execution environment talks to (what Lambda serves at
`AWS_LAMBDA_RUNTIME_API`): the runtime asks for the next invocation, then posts its response or
its error; a runtime that cannot load the handler posts an init error. AWS's Runtime Interface
Client (`awslambdaric`) runs against it unchanged."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
RESULT_PATH = re.compile(rf"^{PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")


@dataclass
class Invocation:
    """One event handed to the runtime, and what the runtime answered."""

    event: bytes
    function_arn: str
    timeout_seconds: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    dispatched_at: float | None = None  # when the runtime took it (the timeout counts from here)
    payload: bytes | None = None
    error_type: str | None = None  # set when the runtime posted an error
    answered: threading.Event = field(default_factory=threading.Event)

    def answer(self, payload: bytes, error_type: str | None = None) -> None:
        self.payload, self.error_type = payload, error_type
        self.answered.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A runtime killed mid-request (a timeout, the environment stopping) is expected: quiet."""


class RuntimeApi:
    """A loopback HTTP server for one execution environment; `address` is what the runtime
    gets as AWS_LAMBDA_RUNTIME_API."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Invocation | None] = queue.Queue()
        self.current: Invocation | None = None
        self.init_error: bytes | None = None
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-runtime-api", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def submit(self, invocation: Invocation) -> None:
        self.pending.put(invocation)

    def next_invocation(self) -> Invocation | None:
        """Blocks until there is an event (None once the environment stops)."""
        invocation = self.pending.get()
        if invocation is not None:
            invocation.dispatched_at = time.monotonic()
            self.current = invocation
        return invocation

    def stop(self) -> None:
        self.pending.put(None)  # releases a runtime waiting for its next event
        self._server.shutdown()
        self._server.server_close()


def _handler_for(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def _reply(self, status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self._reply(404, {"errorMessage": f"unknown path {self.path}", "errorType": "InvalidRequest"})
                return
            invocation = api.next_invocation()
            if invocation is None:
                self._reply(410, {"errorMessage": "the environment stopped", "errorType": "EnvironmentStopped"})
                return
            deadline_ms = int((time.time() + invocation.timeout_seconds) * 1000)
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", invocation.function_arn)
            self.send_header("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(invocation.event)))
            self.end_headers()
            self.wfile.write(invocation.event)

        def do_POST(self) -> None:
            body = self._body()
            if self.path == f"{PREFIX}/init/error":
                api.init_error = body
                self._reply(202, {"status": "OK"})
                return
            match = RESULT_PATH.match(self.path)
            current = api.current
            if match is None:
                self._reply(404, {"errorMessage": f"unknown path {self.path}", "errorType": "InvalidRequest"})
                return
            if current is None or current.request_id != match["id"] or current.answered.is_set():
                message = f"no invocation {match['id']} is waiting for an answer"
                self._reply(400, {"errorMessage": message, "errorType": "InvalidRequestID"})
                return
            if match["kind"] == "error":
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled"
                current.answer(body, error_type)
            else:
                current.answer(body)
            self._reply(202, {"status": "OK"})

    return Handler
