"""Every WebSocket API deployed to the emulator (by CloudFormation or the API, whoever made it)
answers on a real socket at ws://127.0.0.1:<port>/<apiId>/<stage>: `$connect` (its function
may refuse the connection with a status code), the route selection expression evaluated on
each frame (`$default` when it names no route; "Forbidden" without one), `$disconnect`, and
AWS_PROXY integrations run by the emulator's Lambda runtime with events shaped as API Gateway
sends them. A route with a route-response selection expression sends the function's answer
back. The `@connections` management API (moto's, at the emulator's endpoint) reaches these
sockets: posts are delivered, and a gone connection answers 410 GoneException; functions reach
it at `https://{domainName}/{stage}` too (emulator/https_proxy.py).

API Gateway's limits (emulator/websocket_limits.py) apply: the integration's timeout ("Endpoint
request timed out"; 504 on `$connect`), the stage's throttling per route (429 on `$connect`,
"Too Many Requests" for a message), 128 KB messages (larger: closed with 1009), 10 minutes idle
and 2 hours at most (closed with 1001). A Lambda REQUEST authorizer on `$connect` runs first
(emulator/websocket_authorizer.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import WSCloseCode, WSMsgType, web
from moto.apigatewaymanagementapi import urls
from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend
from moto.apigatewayv2.models import apigatewayv2_backends
from moto.awslambda.models import lambda_backends
from moto.core.exceptions import JsonRESTError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from emulator import functions, lambda_versions, metrics, websocket_authorizer, websocket_limits

ACCOUNT = "123456789012"
INTEGRATIONS_IN_FLIGHT = 256  # invocations the sockets may wait on at once (each environment is a process here)
FUNCTION_IN_URI = re.compile(r"(arn:aws[a-z-]*:lambda:[^/]+?:function:[^/]+?)(?:/invocations)?$")
_installed = False


class GoneException(JsonRESTError):
    code = 410

    def __init__(self, connection_id: str) -> None:
        super().__init__("GoneException", f"connection {connection_id} is gone")


@dataclass
class Connection:
    connection_id: str
    api_id: str
    stage: str
    region: str
    socket: web.WebSocketResponse
    loop: asyncio.AbstractEventLoop
    connected_at: int
    source_ip: str
    user_agent: str
    last_active_at: int
    authorizer: dict[str, Any] | None = None  # what the $connect authorizer returned
    closed_with: int | None = None  # the code API Gateway closed it with (idle, too old, too big)


_connections: dict[str, Connection] = {}  # open sockets by connection id
_served: set[str] = set()  # every id these sockets ever had: a closed one is gone (410)
_throttles = websocket_limits.Throttles()
_original_post = ApiGatewayManagementApiBackend.post_to_connection
_original_get = ApiGatewayManagementApiBackend.get_connection
_original_delete = ApiGatewayManagementApiBackend.delete_connection


def _find_api(api_id: str) -> tuple[str, Any] | None:
    for region, backend in dict.items(apigatewayv2_backends[ACCOUNT]):
        api = backend.apis.get(api_id)
        if api is not None and str(api.protocol_type).upper() == "WEBSOCKET":
            return region, api
    return None


def _route(api: Any, route_key: str) -> Any | None:
    return next((route for route in api.routes.values() if route.route_key == route_key), None)


def select_route_key(expression: str, body: str) -> str:
    """The route key `$request.body.<path>` names in a frame, or `$default`."""
    path = expression.removeprefix("$request.body.").split(".") if expression.startswith("$request.body.") else []
    try:
        value: Any = json.loads(body)
    except ValueError:
        return "$default"
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and path else "$default"


def _connection_id() -> str:
    """Shaped as API Gateway's (letters, digits, a trailing "="): no "/" or "+" to break a URL path."""
    return base64.b64encode(os.urandom(10), altchars=b"Aa").decode()


def _integration(api: Any, route: Any) -> Any | None:
    return api.integrations.get(str(route.target or "").removeprefix("integrations/"))


def _function_arn(api: Any, route: Any) -> str | None:
    integration = _integration(api, route)
    if integration is None or integration.integration_type != "AWS_PROXY":
        return None
    match = FUNCTION_IN_URI.search(str(integration.integration_uri or ""))
    return match[1] if match else None


def _invoke(region: str, function_arn: str, event: dict[str, Any]) -> tuple[bool, Any]:
    """(succeeded, the function's decoded answer). A throttled invocation is an integration
    failure: API Gateway answers it as it answers a failed function (500)."""
    function, alias = lambda_versions.invoked(lambda_backends[ACCOUNT][region]._lambdas, function_arn, None)
    try:
        with lambda_versions.through(function, alias):
            result = functions.invoke(function, json.dumps(event).encode())
    except functions.Throttled:
        return False, None
    try:
        answer = json.loads(result.payload) if result.payload else None
    except ValueError:
        answer = result.payload.decode(errors="replace")
    return result.function_error is None, answer


async def _call(region: str, function_arn: str, event: dict[str, Any], timeout: float) -> tuple[bool, Any] | None:
    """The function's answer, or None when it took longer than the integration may (the
    function itself runs on, as it does on AWS)."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(None, _invoke, region, function_arn, event), timeout)
    except TimeoutError:
        return None


def _event(connection: Connection, route_key: str, event_type: str, **extra: Any) -> dict[str, Any]:
    now = time.time()
    context = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": base64.b64encode(os.urandom(12)).decode(),
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "messageDirection": "IN",
        "stage": connection.stage,
        "connectedAt": connection.connected_at,
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
        "requestId": base64.b64encode(os.urandom(12)).decode(),
        "domainName": f"{connection.api_id}.execute-api.{connection.region}.amazonaws.com",
        "connectionId": connection.connection_id,
        "apiId": connection.api_id,
    }
    if connection.authorizer is not None:
        context["authorizer"] = connection.authorizer
    return {"requestContext": context, "isBase64Encoded": False, **extra}


def _status(answer: Any) -> int:
    return int(answer.get("statusCode", 200)) if isinstance(answer, dict) else 200


def _reply_body(answer: Any) -> str:
    if isinstance(answer, dict) and "body" in answer:
        return str(answer["body"])
    return json.dumps(answer)


def _refusal(status: int) -> web.Response:
    message = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 504: "Endpoint request timed out"}
    return web.json_response({"message": message.get(status, "Internal server error")}, status=status)


async def _authorize(api: Any, route: Any, connection: Connection, event: dict[str, Any], stage: Any) -> int:
    """Runs the route's Lambda REQUEST authorizer, if it has one; the handshake's status."""
    if str(route.authorization_type or "NONE").upper() != "CUSTOM":
        return 200
    authorizer = api.authorizers.get(route.authorizer_id)
    match = FUNCTION_IN_URI.search(str(getattr(authorizer, "authorizer_uri", "") or ""))
    if authorizer is None or match is None:
        return 500
    variables = dict(stage.stage_variables or {})
    query = event.get("queryStringParameters") or {}
    if not websocket_authorizer.identity_present(
        list(authorizer.identity_source or []), event["headers"], query, variables
    ):
        return 401
    arn = websocket_authorizer.method_arn(connection.region, ACCOUNT, connection.api_id, connection.stage)
    answered = await _call(
        connection.region,
        match[1],
        websocket_authorizer.request_event(event, arn, variables),
        websocket_limits.LIMITS.integration_timeout_ms / 1000,
    )
    ok, answer = answered or (False, None)
    decision = websocket_authorizer.decide(ok, answer, arn)
    connection.authorizer = decision.context
    return decision.status


async def _serve(request: web.Request) -> web.StreamResponse:
    api_id, stage_name = request.match_info["api_id"], request.match_info["stage"]
    found = _find_api(api_id)
    if found is None or stage_name not in found[1].stages:
        return web.json_response({"message": "Forbidden"}, status=403)
    region, api = found
    stage = api.stages[stage_name]
    if not _throttles.allow(api_id, stage, "$connect"):
        return _refusal(429)
    # aiohttp refuses a message of max_msg_size bytes, AWS one over its limit; no permessage-deflate
    # (API Gateway negotiates none)
    socket = web.WebSocketResponse(max_msg_size=websocket_limits.LIMITS.message_bytes + 1, compress=False)
    now_ms = int(time.time() * 1000)
    connection = Connection(
        _connection_id(),
        api_id,
        stage_name,
        region,
        socket,
        asyncio.get_running_loop(),
        now_ms,
        request.remote or "127.0.0.1",
        request.headers.get("User-Agent", ""),
        now_ms,
    )
    connect = _route(api, "$connect")
    if connect is not None:
        headers = dict(request.headers)
        event = _event(
            connection,
            "$connect",
            "CONNECT",
            headers=headers,
            multiValueHeaders={k: [v] for k, v in headers.items()},
            queryStringParameters=dict(request.query) or None,
        )
        status = await _authorize(api, connect, connection, event, stage)
        if status != 200:
            return _refusal(status)
        event["requestContext"] = _event(connection, "$connect", "CONNECT")["requestContext"]  # with the authorizer's
        arn = _function_arn(api, connect)
        if arn:
            answered = await _call(region, arn, event, websocket_limits.integration_timeout(_integration(api, connect)))
            ok, answer = answered or (False, None)
            metrics.api_gateway(ACCOUNT, region, api_id, stage_name, ConnectCount=1, IntegrationError=0 if ok else 1)
            if answered is None:
                return _refusal(504)
            if not ok or _status(answer) >= 400:
                return _refusal(_status(answer) if ok else 500)
    await socket.prepare(request)
    _connections[connection.connection_id] = connection
    _served.add(connection.connection_id)
    watchdog = asyncio.create_task(_close_when_expired(connection))
    try:
        async for message in socket:
            if message.type == WSMsgType.ERROR and getattr(message.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG:
                connection.closed_with = WSCloseCode.MESSAGE_TOO_BIG
            if message.type != WSMsgType.TEXT:
                continue
            connection.last_active_at = int(time.time() * 1000)
            await _message(api, stage, connection, message.data)
    finally:
        watchdog.cancel()
        _connections.pop(connection.connection_id, None)
        await _disconnected(api, connection)
    return socket


async def _close_when_expired(connection: Connection) -> None:
    """API Gateway closes a connection idle for 10 minutes, and any after 2 hours (code 1001)."""
    limits = websocket_limits.LIMITS
    while not connection.socket.closed:
        idle_end = connection.last_active_at / 1000 + limits.idle_seconds
        end = min(idle_end, connection.connected_at / 1000 + limits.max_seconds)
        if time.time() >= end:
            connection.closed_with = WSCloseCode.GOING_AWAY
            await connection.socket.close(code=WSCloseCode.GOING_AWAY, message=b"Going away")
            return
        await asyncio.sleep(min(max(end - time.time(), 0.01), 1.0))


async def _disconnected(api: Any, connection: Connection) -> None:
    disconnect = _route(api, "$disconnect")
    arn = _function_arn(api, disconnect) if disconnect else None
    if not arn:
        return
    code = connection.socket.close_code
    if connection.closed_with == WSCloseCode.GOING_AWAY:
        status, reason = 1001, "Going away"
    elif connection.closed_with == WSCloseCode.MESSAGE_TOO_BIG:
        status, reason = 1009, "Message too big"
    else:
        status, reason = (code or 1005), ("" if code else "Client-side close frame status not set")
    event = _event(connection, "$disconnect", "DISCONNECT", disconnectStatusCode=status, disconnectReason=reason)
    await _call(connection.region, arn, event, websocket_limits.integration_timeout(_integration(api, disconnect)))


async def _message(api: Any, stage: Any, connection: Connection, body: str) -> None:
    key = select_route_key(str(api.route_selection_expression or ""), body)
    route = _route(api, key) or _route(api, "$default")
    failure = {"connectionId": connection.connection_id, "requestId": str(uuid.uuid4())}
    arn = _function_arn(api, route) if route else None
    counted = (ACCOUNT, connection.region, connection.api_id, connection.stage)
    if route is None or arn is None:
        metrics.api_gateway(*counted, MessageCount=1, ClientError=1)
        await connection.socket.send_str(json.dumps({"message": "Forbidden", **failure}))
        return
    if not _throttles.allow(connection.api_id, stage, route.route_key):
        metrics.api_gateway(*counted, MessageCount=1, ClientError=1)
        await connection.socket.send_str(json.dumps({"message": "Too Many Requests", **failure}))
        return
    event = _event(
        connection, route.route_key, "MESSAGE", body=body, messageId=base64.b64encode(os.urandom(10)).decode()
    )
    started = time.monotonic()
    answered = await _call(
        connection.region, arn, event, websocket_limits.integration_timeout(_integration(api, route))
    )
    latency = (time.monotonic() - started) * 1000
    ok = answered is not None and answered[0]
    metrics.api_gateway(
        *counted, MessageCount=1, ClientError=0, IntegrationError=0 if ok else 1, IntegrationLatency=latency
    )
    if answered is None:
        await connection.socket.send_str(json.dumps({"message": "Endpoint request timed out", **failure}))
    elif not answered[0]:
        await connection.socket.send_str(json.dumps({"message": "Internal server error", **failure}))
    elif route.route_response_selection_expression:
        await connection.socket.send_str(_reply_body(answered[1]))


# The management API: moto serves it; these sockets answer it. ----------------------------------------


def _ours(connection_id: str) -> bool:
    return unquote(connection_id) in _served


def _live(connection_id: str) -> Connection:
    connection_id = unquote(connection_id)  # moto hands over the id as it is in the path
    connection = _connections.get(connection_id)
    if connection is None or connection.socket.closed:
        raise GoneException(connection_id)
    return connection


def _post_to_connection(self: ApiGatewayManagementApiBackend, data: bytes, connection_id: str) -> None:
    if not _ours(connection_id):  # not a socket of ours (moto's own bookkeeping, e.g. under mock_aws)
        return _original_post(self, data, connection_id)
    connection = _live(connection_id)
    text = data.decode() if isinstance(data, bytes) else str(data)
    asyncio.run_coroutine_threadsafe(connection.socket.send_str(text), connection.loop).result(timeout=10)


def _get_connection(self: ApiGatewayManagementApiBackend, connection_id: str) -> Any:
    if not _ours(connection_id):
        return _original_get(self, connection_id)
    connection = _live(connection_id)

    class Info:
        def to_dict(self) -> dict[str, Any]:
            return {
                "connectedAt": connection.connected_at / 1000,
                "lastActiveAt": connection.last_active_at / 1000,
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            }

    return Info()


def _delete_connection(self: ApiGatewayManagementApiBackend, connection_id: str) -> None:
    if not _ours(connection_id):
        return _original_delete(self, connection_id)
    connection = _live(connection_id)
    asyncio.run_coroutine_threadsafe(connection.socket.close(), connection.loop).result(timeout=10)


def _management_with_stage(original: Any) -> Any:
    """moto's server recognises the management API only without a stage before `/@connections`."""

    def infer(self: Any, environ: dict[str, Any], path: str) -> str | None:
        path_info = str(environ.get("PATH_INFO", ""))
        if "execute-api" in str(environ.get("HTTP_AUTHORIZATION", "")) and "/@connections/" in path_info:
            environ = {**environ, "PATH_INFO": path_info[path_info.index("/@connections/") :]}
        return original(self, environ, path)

    return infer


def install() -> None:
    global _installed
    if _installed:
        return
    # `https://{domainName}/{stage}/@connections/{id}` as `<emulator endpoint>/{stage}/@connections/{id}`:
    # moto's own pattern for a stage prefix does not match in server mode
    urls.url_paths["{0}/(?P<stage_name>[^/]+)/@connections/(?P<connection_id>[^/]+)$"] = (
        urls.response.connect_to_apigateway
    )
    DomainDispatcherApplication.infer_service_region_host = _management_with_stage(  # type: ignore[method-assign]
        DomainDispatcherApplication.infer_service_region_host
    )
    ApiGatewayManagementApiBackend.post_to_connection = _post_to_connection  # type: ignore[method-assign]
    ApiGatewayManagementApiBackend.get_connection = _get_connection  # type: ignore[method-assign]
    ApiGatewayManagementApiBackend.delete_connection = _delete_connection  # type: ignore[method-assign]
    _installed = True


class WebSocketServer:
    """The sockets' own loopback port, served from a thread with its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Integrations run in threads (each waits on a Lambda environment): asyncio's default pool
        # (a few per core) would serialize a storm that API Gateway sends all at once.
        in_flight = int(os.environ.get("EMULATOR_INTEGRATIONS_IN_FLIGHT", INTEGRATIONS_IN_FLIGHT))
        self.loop.set_default_executor(ThreadPoolExecutor(in_flight, thread_name_prefix="integration"))
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="emulator-websockets", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator's WebSocket server did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/{api_id}/{stage}", _serve)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        self.loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self.loop.run_forever()

    def url(self, api_id: str, stage: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{api_id}/{stage}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
