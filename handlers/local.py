"""`python -m handlers.local`: the project's WebSocket API on this machine, for the Flutter app,
the backend team and the tests. The real Lambda entry points run in this process, configured from
the environment as on Lambda, behind a real WebSocket server that behaves like API Gateway's:

- `$connect` with the query string and headers; a refusal is a failed handshake with the
  handler's status. Messages go to `$default` (the API routes on `$request.body.action` and has
  no other route); `$disconnect` runs when either side closes, and for every connection on Ctrl-C.
- Events shaped as API Gateway sends them (requestContext with connectionId, routeKey, eventType,
  domainName, stage, apiId, requestId, messageId, connectedAt, requestTimeEpoch, identity).
- 128 KB message limit (closes with 1009), 10 minutes idle and 2 hours at most (both settable).
- The management API on the same port: POST/GET/DELETE `/@connections/{id}`, answering 410
  GoneException for unknown or closed ids, as boto3's `apigatewaymanagementapi` expects. The
  handlers reach it through `AWS_WEBSOCKET_API_GATEWAY_ENDPOINT`, unchanged.
- The backend's push path: POST `/notify` with the notify function's payload.
- The management API and `/notify` answer callers on this machine only (loopback, or the
  server's own address), unless `CC_LOCAL_API_TOKEN` is set and the caller sends it as
  `Authorization: Bearer <token>`: `--host 0.0.0.0` lets phones connect, not push or disconnect.
- Paths the app's builds use: `/ws/careconnect`, `/ws/calls` (and `/ws/calls-ws`),
  `/ws/notifications` and `/`; the
  path becomes the `service` query parameter the app passes to API Gateway (one URL there).
- At start, the migration brings the table to the handlers' version (`handlers.migrate`).
- Lambda's concurrency (handlers/local_environments.py): each concurrent invocation of a
  function runs in an execution environment of its own, a worker process with its own
  PostgreSQL connection, up to the function's reserved concurrency from the connection budget;
  beyond it a `$connect` fails with 500 and a message gets `Internal server error`, as API
  Gateway answers a throttled integration. `--single-process`: every handler here, one connection.

One log line per frame in and out (type and size, never bodies).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from generator.budget import BUDGETS, DEFAULT_BUDGET, UNRESERVED
from handlers.local_environments import (
    ACCOUNT_CONCURRENCY,
    IDLE_SECONDS,
    Environments,
    FunctionError,
    Throttled,
)

MAX_MESSAGE_BYTES = 128 * 1024
PATHS = ("/", "/ws/careconnect", "/ws/calls", "/ws/calls-ws", "/ws/notifications")
# the rest: careconnect. /ws/calls-ws: the newer origin's CallNotificationHandler without SockJS.
SERVICES = {"/ws/calls": "calls", "/ws/calls-ws": "calls", "/ws/notifications": "notifications"}
TOKEN_VARIABLE = "CC_LOCAL_API_TOKEN"
STAGE, API_ID = "local", "local"
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"  # what CI and the tests' discovery use
log = logging.getLogger("handlers.local")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _request_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _gone() -> web.Response:
    """What API Gateway answers for a connection that is not (or no longer) there."""
    return web.json_response({"message": "Gone"}, status=410, headers={"x-amzn-ErrorType": "GoneException"})


class Connection:
    def __init__(self, connection_id: str, socket: web.WebSocketResponse, source_ip: str, user_agent: str) -> None:
        self.id, self.socket, self.source_ip, self.user_agent = connection_id, socket, source_ip, user_agent
        self.connected_at = self.last_active = _now_ms()
        self.open = asyncio.Event()  # set once the 101 is sent: frames can go out from then on


class LocalApi:
    """The WebSocket API and its management API, in one aiohttp application."""

    def __init__(
        self,
        domain: str,
        *,
        idle_seconds: float = 600,
        max_seconds: float = 7200,
        api_token: str = "",
        environments: Environments | None = None,
    ) -> None:
        self.domain, self.idle_seconds, self.max_seconds = domain, idle_seconds, max_seconds
        self.api_token = api_token
        self.connections: dict[str, Connection] = {}
        self.closing = False  # Ctrl-C: close_all is closing every connection
        # None: every handler in this process, on one connection (--single-process)
        self.environments = environments

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_MESSAGE_BYTES + 1024, middlewares=[self.guard])
        for path in PATHS:
            app.router.add_get(path, self.websocket)
        for method in ("POST", "GET", "DELETE"):
            app.router.add_route(method, "/@connections/{id}", self.management)
            app.router.add_route(method, "/{stage}/@connections/{id}", self.management)
        app.router.add_post("/notify", self.notify)
        app.on_shutdown.append(self.close_all)
        if self.environments is not None:
            environments = self.environments

            async def start(_app: web.Application) -> None:
                await environments.start()

            async def stop(_app: web.Application) -> None:  # after the last $disconnect
                await environments.stop()

            app.on_startup.append(start)
            app.on_cleanup.append(stop)
        return app

    @web.middleware
    async def guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Pushing and closing connections is for this machine, or for callers with the token."""
        if request.path in PATHS or _same_machine(request) or self._token_matches(request):
            return await handler(request)
        log.warning("refused a remote caller", extra={"path": request.path.split("/@connections/")[0] or "/"})
        reason = (
            "send Authorization: Bearer <CC_LOCAL_API_TOKEN>"
            if self.api_token
            else (f"answered on this machine only; set {TOKEN_VARIABLE} to allow remote callers with that bearer token")
        )
        return web.json_response(
            {"message": f"Forbidden: {reason}"}, status=403, headers={"x-amzn-ErrorType": "ForbiddenException"}
        )

    def _token_matches(self, request: web.Request) -> bool:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return bool(self.api_token) and secrets.compare_digest(sent.encode(), self.api_token.encode())

    # --- events, as API Gateway shapes them ------------------------------------------------------

    def _context(
        self, connection_id: str, route: str, event_type: str, connected_at: int, **more: Any
    ) -> dict[str, Any]:
        now = _now_ms()
        return {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": secrets.token_hex(8),
            "requestTime": _request_time(now),
            "messageDirection": "IN",
            "stage": STAGE,
            "connectedAt": connected_at,
            "requestTimeEpoch": now,
            "identity": {"sourceIp": more.pop("source_ip", "127.0.0.1"), "userAgent": more.pop("user_agent", "")},
            "requestId": secrets.token_hex(8),
            "domainName": self.domain,
            "connectionId": connection_id,
            "apiId": API_ID,
            **more,
        }

    async def _invoke(
        self, module: str, event: Any, request_id: str | None = None, *, wait: bool = False
    ) -> dict[str, Any]:
        """The real entry point: in an execution environment of its own (Throttled beyond the
        function's reserved concurrency), or with --single-process in a worker thread here (the
        handlers block on PostgreSQL and HTTP)."""
        request_id = request_id or event["requestContext"]["requestId"]
        if self.environments is not None:
            return await self.environments.invoke(module, event, request_id, wait=wait)
        handler = __import__(f"handlers.{module}", fromlist=["handler"]).handler
        context = type("Context", (), {"aws_request_id": request_id})()
        result: dict[str, Any] = await asyncio.to_thread(handler, event, context)
        return result

    # --- the WebSocket side ---------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        connection_id = base64.b64encode(secrets.token_bytes(9)).decode()  # API Gateway's shape: 12 chars
        query = dict(request.query)
        if request.path in SERVICES:  # as the app names the endpoint on API Gateway (one URL there)
            query.setdefault("service", SERVICES[request.path])
        source_ip = request.remote or "127.0.0.1"
        user_agent = request.headers.get("User-Agent", "")
        connected_at = _now_ms()
        headers = dict(request.headers)
        connect = {
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            "requestContext": self._context(
                connection_id, "$connect", "CONNECT", connected_at, source_ip=source_ip, user_agent=user_agent
            ),
            "isBase64Encoded": False,
        }
        try:
            answer = await self._invoke("connect", connect)
        except (Throttled, FunctionError) as failure:  # API Gateway's answer to a failed integration
            log.info("connect failed", extra={"connectionId": connection_id, "reason": str(failure)})
            return web.json_response({"message": "Internal server error"}, status=500)
        status = int(answer.get("statusCode", 200))
        if status != 200:
            log.info("connect refused", extra={"connectionId": connection_id, "status": status})
            return web.Response(status=status, text=str(answer.get("body", "")))
        socket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, autoping=True)
        connection = Connection(connection_id, socket, source_ip, user_agent)
        # Registered before the 101 goes out, as API Gateway does: a client that has its socket can
        # already be posted to (a post that comes first waits for the upgrade to finish).
        self.connections[connection_id] = connection
        reason = (1000, "Normal closure")
        try:
            await socket.prepare(request)
            connection.open.set()
            log.info("connected", extra={"connectionId": connection_id, "path": request.path})
            reason = await self._receive(connection)
        finally:
            self.connections.pop(connection_id, None)
            connection.open.set()  # a post waiting on a failed upgrade now finds the socket closed: 410
            if socket.prepared and not socket.closed:
                await socket.close(code=reason[0], message=reason[1].encode())
            disconnect = {
                "headers": {"Host": self.domain},
                "multiValueHeaders": {"Host": [self.domain]},
                "requestContext": self._context(
                    connection_id,
                    "$disconnect",
                    "DISCONNECT",
                    connected_at,
                    disconnectStatusCode=socket.close_code or reason[0],
                    disconnectReason=reason[1],
                    source_ip=source_ip,
                    user_agent=user_agent,
                ),
                "isBase64Encoded": False,
            }
            try:
                # Ctrl-C's disconnects wait for an environment: every row ends inactive, as promised
                await self._invoke("disconnect", disconnect, wait=self.closing)
            except (Throttled, FunctionError) as failure:  # API Gateway does not retry it: the row stays
                log.warning("disconnect failed", extra={"connectionId": connection_id, "reason": str(failure)})
            log.info("disconnected", extra={"connectionId": connection_id, "code": socket.close_code})
        return socket

    async def _receive(self, connection: Connection) -> tuple[int, str]:
        """Frames in until a close; the idle and lifetime limits close with 1001, as API Gateway does."""
        socket = connection.socket
        while True:
            left = self.max_seconds - (_now_ms() - connection.connected_at) / 1000
            try:
                message = await asyncio.wait_for(socket.receive(), timeout=max(0.0, min(self.idle_seconds, left)))
            except TimeoutError:
                return (1001, "Going away")
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return (socket.close_code or 1000, "Normal closure")
            if message.type == WSMsgType.ERROR:  # aiohttp closes an oversized message with 1009
                return (socket.close_code or 1009, "Message too big")
            connection.last_active = _now_ms()
            binary = message.type == WSMsgType.BINARY
            body = base64.b64encode(message.data).decode() if binary else message.data
            log.info("frame in", extra={"connectionId": connection.id, "bytes": len(message.data)})
            event = {
                "requestContext": self._context(
                    connection.id,
                    "$default",
                    "MESSAGE",
                    connection.connected_at,
                    messageId=secrets.token_hex(8),
                    source_ip=connection.source_ip,
                    user_agent=connection.user_agent,
                ),
                "body": body,
                "isBase64Encoded": binary,
            }
            request_id = secrets.token_hex(8)
            try:
                await self._invoke("default", event, request_id)
            except (Throttled, FunctionError) as failure:  # as API Gateway tells the client
                log.info("message failed", extra={"connectionId": connection.id, "reason": str(failure)})
                failed = {"message": "Internal server error", "connectionId": connection.id}
                await socket.send_json({**failed, "requestId": request_id})

    async def close_all(self, _app: web.Application) -> None:
        """Ctrl-C: close every connection; each one's `$disconnect` runs as its socket ends."""
        self.closing = True
        for connection in list(self.connections.values()):
            await connection.open.wait()
            await connection.socket.close(code=1001, message=b"Going away")

    # --- the management API ------------------------------------------------------------------------

    async def management(self, request: web.Request) -> web.StreamResponse:
        connection = self.connections.get(request.match_info["id"])
        if connection is not None:
            await connection.open.wait()
        if connection is None or connection.socket.closed or not connection.socket.prepared:
            return _gone()
        if request.method == "POST":
            data = await request.read()
            if len(data) > MAX_MESSAGE_BYTES:
                return web.json_response(
                    {"message": "Request entity too large"},
                    status=413,
                    headers={"x-amzn-ErrorType": "PayloadTooLargeException"},
                )
            try:
                text = data.decode()
            except UnicodeDecodeError:  # not text: a binary frame, as API Gateway sends it
                text = None
            try:
                await (connection.socket.send_str(text) if text is not None else connection.socket.send_bytes(data))
            except ConnectionError:  # closed while we were sending: gone, as for API Gateway
                return _gone()
            log.info("frame out", extra={"connectionId": connection.id, "bytes": len(data)})
            return web.Response(status=200)
        if request.method == "DELETE":
            await connection.socket.close(code=1000, message=b"Closed by the server")
            return web.Response(status=204)
        iso = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")  # noqa: E731
        # The wire names (camelCase) of botocore's GetConnection output.
        return web.json_response(
            {
                "connectedAt": iso(connection.connected_at),
                "lastActiveAt": iso(connection.last_active),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            }
        )

    async def notify(self, request: web.Request) -> web.StreamResponse:
        """The backend's push path, as the notify function answers it."""
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be JSON: {recipients, message}"}, status=400)
        try:
            answer = await self._invoke("notify", payload, request_id=secrets.token_hex(8))
        except Throttled as throttled:  # as Lambda's Invoke answers the backend
            return web.json_response(
                {"message": "Rate Exceeded.", "Reason": throttled.reason},
                status=429,
                headers={"x-amzn-ErrorType": "TooManyRequestsException"},
            )
        except FunctionError as failure:
            return web.json_response({"error": str(failure)}, status=500)
        return web.json_response(answer, status=400 if "error" in answer else 200)


def _same_machine(request: web.Request) -> bool:
    """A loopback caller, or one calling from the address it reached us on (this machine)."""
    remote = request.remote or ""
    try:
        if ipaddress.ip_address(remote).is_loopback:
            return True
    except ValueError:
        return False
    sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
    return bool(sockname) and sockname[0] == remote


def migrate_at_start() -> None:
    """The release step, run once before serving (never per request)."""
    from handlers.migrate import handler

    answer = handler({}, None)
    if "error" in answer:
        raise SystemExit(f"error: {answer['error']}")
    if answer["changed"]:
        print(f"migrated websocket_connections: {', '.join(answer['steps'])}", file=sys.stderr)


def configure(host: str, port: int) -> None:
    """The handlers' settings from the environment, as on Lambda, with local defaults."""
    loopback = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # the handlers post from this machine
    os.environ.setdefault("AWS_WEBSOCKET_API_GATEWAY_ENDPOINT", f"http://{loopback}:{port}")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")  # the local management API takes any signature
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = _find_postgres()
        os.environ.setdefault("DATABASE_AUTH", "url")
    if not (os.environ.get("JWT_SECRET") or os.environ.get("JWT_SECRET_ARN") or os.environ.get("JWT_PUBLIC_KEY")):
        raise SystemExit(
            "error: no token key: set JWT_SECRET to the backend's security.jwt.secret (its base64 text, "
            "SECURITY_JWT_SECRET), so that the app's tokens authenticate here"
        )


def _find_postgres() -> str:
    """As the tests look: CC_TEST_DATABASE_URL, then the local server on 5432 with database `test`."""
    import psycopg

    tried = [url for url in (os.environ.get("CC_TEST_DATABASE_URL"), LOCAL_POSTGRES) if url]
    for url in tried:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return url
        except psycopg.Error:
            continue
    raise SystemExit(
        "error: no PostgreSQL: set DATABASE_URL=postgresql://user:password@host:5432/db "
        f"(tried {', '.join(tried)}: no answer)"
    )


def _emulated(host: str, port: int) -> int:
    """The rollout's own deployment in the emulator behind these paths (rollout/local_stage.py)."""
    if not os.environ.get("JWT_SECRET"):
        raise SystemExit("error: --emulated needs JWT_SECRET (the backend's security.jwt.secret, its base64 text)")
    from rollout.local_stage import serve

    serve(host, port, os.environ["DATABASE_URL"], os.environ["JWT_SECRET"])
    return 0


def _budget(text: str) -> int | str:
    """A connection budget: a whole number of connections (at least 10, so each function gets one;
    the template allows BUDGETS), or `unreserved`."""
    if text == UNRESERVED:
        return UNRESERVED
    if not text.isdigit() or int(text) < 10:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number of connections, at least 10 (the template allows "
            f"{', '.join(map(str, BUDGETS))}), or {UNRESERVED}"
        )
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlers.local", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--idle-seconds", type=float, default=600, help="idle timeout (API Gateway: 10 minutes)")
    parser.add_argument("--max-seconds", type=float, default=7200, help="longest connection (API Gateway: 2 hours)")
    parser.add_argument(
        "--connection-budget",
        type=_budget,
        default=DEFAULT_BUDGET,
        metavar="N",
        help=f"PostgreSQL connections the four functions may hold, split 4:3:2:1 into reserved concurrency "
        f"as the compute template does (default {DEFAULT_BUDGET}, the template's; {UNRESERVED}: no limit)",
    )
    parser.add_argument(
        "--environment-idle-seconds",
        type=float,
        default=IDLE_SECONDS,
        help="an execution environment idle this long is reclaimed, and its connection closed",
    )
    parser.add_argument(
        "--warm-environments",
        type=int,
        default=1,
        metavar="N",
        help="environments per function started with the server and kept (provisioned concurrency)",
    )
    parser.add_argument(
        "--account-concurrency",
        type=int,
        default=ACCOUNT_CONCURRENCY,
        metavar="N",
        help="environments of all functions at most (Lambda's account concurrency)",
    )
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="every handler in this process on one PostgreSQL connection (no environments, no throttle)",
    )
    parser.add_argument(
        "--emulated",
        action="store_true",
        help="deploy the project to the embedded emulator and serve its stage at these paths",
    )
    args = parser.parse_args(argv)
    configure(args.host, args.port)
    if args.emulated:
        return _emulated(args.host, args.port)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    migrate_at_start()
    environments = None
    if not args.single_process:
        environments = Environments(
            None if args.connection_budget == UNRESERVED else int(args.connection_budget),
            idle_seconds=args.environment_idle_seconds,
            warm=args.warm_environments,
            account_concurrency=args.account_concurrency,
        )
    api = LocalApi(
        f"{args.host}:{args.port}",
        idle_seconds=args.idle_seconds,
        max_seconds=args.max_seconds,
        api_token=os.environ.get(TOKEN_VARIABLE, ""),
        environments=environments,
    )
    banner = (
        f"WebSocket API on ws://{args.host}:{args.port}/ws/careconnect (also /ws/calls, /ws/notifications, /); "
        f"management API and POST /notify on http://{args.host}:{args.port}"
    )
    # run_app calls `print` once the socket listens: the banner means "connect now".
    web.run_app(
        api.app(),
        host=args.host,
        port=args.port,
        handle_signals=True,
        print=lambda _: print(banner, file=sys.stderr, flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
