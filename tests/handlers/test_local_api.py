"""The local WebSocket API over real sockets (aiohttp's WebSocket client): the real handlers, the
real PostgreSQL, the management API on the same port, and the backend's push path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from handlers.local import MAX_MESSAGE_BYTES, LocalApi
from handlers.store import ConnectionStore
from tests.handlers.careconnect import mint
from tests.handlers.conftest import SECRET, Users, row, table
from tests.handlers.events import connect_event
from tests.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]


def serve_handlers_here(monkeypatch: pytest.MonkeyPatch) -> int:
    """A free port for the local API, and the handlers pointed at it to post back."""
    from handlers import aws, runtime

    port = free_port()
    monkeypatch.setenv("AWS_WEBSOCKET_API_GATEWAY_ENDPOINT", f"http://127.0.0.1:{port}")
    for cached in (runtime.settings, runtime._sender, aws.management_client):
        cached.cache_clear()
    return port


@pytest.fixture
def local_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, LocalApi]]:
    port = serve_handlers_here(monkeypatch)
    base = f"http://127.0.0.1:{port}"
    api = LocalApi(f"127.0.0.1:{port}", idle_seconds=5)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(api.app())
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield base, api
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


async def frames_until(ws: aiohttp.ClientWebSocketResponse, kind: str, limit: int = 10) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(limit):
        message = await asyncio.wait_for(ws.receive(), timeout=10)
        if message.type != aiohttp.WSMsgType.TEXT:
            break
        got.append(json.loads(message.data))
        if got[-1]["type"] == kind:
            return got
    raise AssertionError(f"no {kind} in {[f['type'] for f in got]}")


def ws_url(base: str, path: str = "/ws/careconnect") -> str:
    return base.replace("http://", "ws://") + path


def test_the_email_verification_session(local_api: tuple[str, LocalApi], store: ConnectionStore) -> None:
    base, _ = local_api

    async def session() -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(ws_url(base) + "?email=new@example.org&type=email-verification") as ws,
        ):
            await ws.send_json({"type": "subscribe-email-verification", "email": "new@example.org"})
            await frames_until(ws, "email-verification-subscription-confirmed")
            async with http.post(f"{base}/notify", json={"message": {"type": "email-verified",
                                                                     "email": "new@example.org"}}) as answer:  # fmt: skip
                assert answer.status == 200 and await answer.json() == {
                    "delivered": 1,
                    "gone": 0,
                    "failed": 0,
                    "retried": 0,
                }
            return await frames_until(ws, "email-verified")

    assert asyncio.run(session())[-1]["verified"] is True
    (record,) = table(store)
    assert record["subscription_type"] == "email-verification" and record["is_active"] is False


def test_a_call_between_two_clients_with_backend_tokens(local_api: tuple[str, LocalApi], users: Users) -> None:
    base, _ = local_api
    pat, cara = users.add("pat@example.org", "PATIENT", "Pat"), users.add("cara@example.org", "CAREGIVER", "Cara")

    async def call() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(base, "/ws/calls")) as a, \
                http.ws_connect(ws_url(base, "/ws/calls")) as b:  # fmt: skip
            for ws, email in ((a, "pat@example.org"), (b, "cara@example.org")):
                await ws.send_json({"type": "authenticate", "token": mint(SECRET.key, email, "PATIENT")})
                assert (await frames_until(ws, "authentication-success"))[-1]["userEmail"] == email
            await a.send_json({"type": "send-video-call-invitation", "recipientId": str(cara), "callId": "c-1"})
            assert (await frames_until(b, "incoming-video-call"))[-1]["senderId"] == pat
            assert (await frames_until(b, "video-call-invitation"))[-1]["callId"] == "c-1"
            assert (await frames_until(a, "call-invitation-sent"))[-1]["status"] == "delivered"
            await b.send_json({"type": "accept-call", "callId": "c-1", "senderId": str(pat)})
            assert (await frames_until(a, "call-answered"))[-1]["answeredBy"] == cara
            await a.send_json({"type": "end-call", "callId": "c-1", "otherPartyId": str(cara)})
            assert (await frames_until(b, "call-ended"))[-1]["endedBy"] == pat

    asyncio.run(call())


def test_a_vanished_client_is_gone_for_the_sender_and_deactivated(
    local_api: tuple[str, LocalApi], users: Users, store: ConnectionStore
) -> None:
    base, api = local_api
    users.add("pat@example.org", "PATIENT", "Pat")
    cara = users.add("cara@example.org", "CAREGIVER", "Cara")

    async def vanish() -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(ws_url(base)) as a,
            http.ws_connect(ws_url(base)) as b,
        ):
            for ws, email in ((a, "pat@example.org"), (b, "cara@example.org")):
                await ws.send_json({"type": "authenticate", "token": mint(SECRET.key, email, "PATIENT")})
                await frames_until(ws, "authentication-success")
            (gone,) = [c for c in api.connections.values() if row(store, c.id)["user_id"] == cara]
            api.connections.pop(gone.id)  # the network dropped it; no $disconnect reached the backend
            await a.send_json({"type": "send-sms-notification", "recipientId": str(cara), "message": "hi"})
            assert (await frames_until(a, "sms-failed"))[-1]["reason"] == "Recipient not online"
            return gone.id

    gone_id = asyncio.run(vanish())
    assert row(store, gone_id)["is_active"] is False  # the 410 deactivated it


def test_limits_refusals_and_bad_frames(local_api: tuple[str, LocalApi]) -> None:
    base, _ = local_api

    async def probe() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(base) + "?type=bogus")
            assert refused.value.status == 400  # the handler's refusal is the handshake's answer
            async with http.ws_connect(ws_url(base)) as ws:
                await ws.send_str("{not json")
                assert "malformed JSON" in (await frames_until(ws, "error"))[-1]["message"]
                await ws.send_str("x" * (MAX_MESSAGE_BYTES + 1))
                closing = await asyncio.wait_for(ws.receive(), timeout=10)
                while closing.type == aiohttp.WSMsgType.TEXT:
                    closing = await asyncio.wait_for(ws.receive(), timeout=10)
                assert ws.close_code == 1009
            async with http.get(f"{base}/@connections/not-there") as gone:
                assert gone.status == 410 and gone.headers["x-amzn-ErrorType"] == "GoneException"

    asyncio.run(probe())


SHAPES = json.loads((Path(__file__).parent / "fixtures" / "apigw_websocket_event_shapes.json").read_text())


def shape(event: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Key paths and JSON types of an event, as the fixture lists them."""
    paths: dict[str, str] = {}
    for key, value in event.items():
        if isinstance(value, dict):
            paths.update(shape(value, f"{prefix}{key}."))
        else:
            paths[prefix + key] = type(value).__name__
    return paths


def test_events_have_the_shape_api_gateway_sends(
    local_api: tuple[str, LocalApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Message and disconnect events carry every key, with its type, of AWS's captured events
    (fixtures/apigw_websocket_event_shapes.json); the connect event every key the handler tests use."""
    base, _ = local_api
    seen: dict[str, dict[str, Any]] = {}
    from handlers import connect, default, disconnect

    for name, module in (("connect", connect), ("default", default), ("disconnect", disconnect)):
        real = module.handler
        monkeypatch.setattr(
            module, "handler",
            lambda event, context, _real=real, _name=name: seen.setdefault(_name, event) and _real(event, context),
        )  # fmt: skip

    async def one_message() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(base) + "?type=notifications") as ws:
            await ws.send_json({"type": "ping"})
            await frames_until(ws, "heartbeat-response")
        for _ in range(100):  # $disconnect runs after the client's close completes
            if "disconnect" in seen:
                return
            await asyncio.sleep(0.05)

    asyncio.run(one_message())
    for kind, name in (("MESSAGE", "default"), ("DISCONNECT", "disconnect")):
        local = shape(seen[name])
        missing = {path: kind_ for path, kind_ in SHAPES[kind].items() if local.get(path) != kind_}
        assert not missing, f"{kind} event lacks or mistypes {missing}"
        assert seen[name]["requestContext"]["eventType"] == kind
        datetime.strptime(seen[name]["requestContext"]["requestTime"], SHAPES["requestTimeFormat"])
    documented_connect = connect_event("x", {"type": "notifications"})
    assert set(documented_connect) <= set(seen["connect"])
    assert set(documented_connect["requestContext"]) <= set(seen["connect"]["requestContext"])
    assert seen["connect"]["queryStringParameters"] == {"type": "notifications"}
    assert seen["disconnect"]["requestContext"]["disconnectStatusCode"] == 1000


def test_idle_connections_are_closed_and_shutdown_disconnects_everyone(
    store: ConnectionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = serve_handlers_here(monkeypatch)
    base = f"http://127.0.0.1:{port}"

    async def lifecycle() -> int | None:
        api = LocalApi(f"127.0.0.1:{port}", idle_seconds=0.5)
        runner = web.AppRunner(api.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with aiohttp.ClientSession() as http:
            idle = await http.ws_connect(ws_url(base))
            await asyncio.wait_for(idle.receive(), timeout=10)  # closed by the server after 0.5 s idle
            idle_code = idle.close_code
            api.idle_seconds = 60
            kept = [await http.ws_connect(ws_url(base)) for _ in range(3)]
            for ws in kept:
                await ws.send_json({"type": "ping"})
                await frames_until(ws, "heartbeat-response")
            await runner.cleanup()  # what Ctrl-C does
            for ws in kept:
                await ws.close()
        return idle_code

    assert asyncio.run(lifecycle()) == 1001
    rows = table(store)
    assert len(rows) == 4 and all(r["is_active"] is False for r in rows)  # every $disconnect ran


def test_the_command_serves_the_app_and_ctrl_c_disconnects_everyone(store: ConnectionStore) -> None:
    """`python -m handlers.local` as a user runs it: a client connects and is answered; SIGINT with
    the client still connected ends the process cleanly, with that connection's row inactive."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"}
    server = subprocess.Popen([sys.executable, "-m", "handlers.local", "--port", str(port)], env=env,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stderr is not None
        banner = server.stderr.readline()
        assert f"ws://127.0.0.1:{port}/ws/careconnect" in banner, banner

        async def connect_and_interrupt() -> None:
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"ws://127.0.0.1:{port}/ws/careconnect?type=notifications") as ws,
            ):
                await ws.send_json({"type": "ping"})
                await frames_until(ws, "heartbeat-response")
                assert [r["is_active"] for r in table(store)] == [True]
                server.send_signal(signal.SIGINT)
                closed = await asyncio.wait_for(ws.receive(), timeout=10)
                assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

        asyncio.run(connect_and_interrupt())
        assert server.wait(timeout=20) == 0
        assert [r["is_active"] for r in table(store)] == [False]
    finally:
        server.kill()
        server.wait()


def test_without_postgresql_it_stops_and_says_how_to_point_it_at_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers import local

    with socket.socket() as closed_port:  # bound, never listening: no server there
        closed_port.bind(("127.0.0.1", 0))
        nowhere = f"postgresql://nobody@127.0.0.1:{closed_port.getsockname()[1]}/none"
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.setenv("CC_TEST_DATABASE_URL", nowhere)
        monkeypatch.setattr(local, "LOCAL_POSTGRES", nowhere.replace("nobody", "postgres"))
        with pytest.raises(SystemExit) as stop:
            local.configure("127.0.0.1", 8080)
    assert "set DATABASE_URL=postgresql://" in str(stop.value) and nowhere in str(stop.value)


def test_without_a_token_key_it_stops_and_says_which_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers import local

    for name in ("JWT_SECRET", "JWT_SECRET_ARN", "JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match=r"set JWT_SECRET to the backend.s security\.jwt\.secret"):
        local.configure("127.0.0.1", 8080)


def test_boto3s_management_client_works_against_it(local_api: tuple[str, LocalApi]) -> None:
    """Text and binary posts arrive as text and binary frames; GET describes; DELETE closes; then 410."""
    import boto3

    base, api = local_api
    client = boto3.client("apigatewaymanagementapi", endpoint_url=base, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip

    async def session() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(base)) as ws:
            (connection_id,) = list(api.connections)
            await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b'{"type":"x"}')
            assert (await ws.receive_json(timeout=10)) == {"type": "x"}
            await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"\xff\x00")
            assert (await ws.receive_bytes(timeout=10)) == b"\xff\x00"
            described = await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
            assert described["Identity"]["SourceIp"] == "127.0.0.1" and described["ConnectedAt"].year >= 2026
            await asyncio.to_thread(client.delete_connection, ConnectionId=connection_id)
            closed = await asyncio.wait_for(ws.receive(), timeout=10)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            with pytest.raises(client.exceptions.GoneException):
                await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"{}")

    asyncio.run(session())


class _Transport:
    """A socket as aiohttp sees it: who called (peername) and the address it reached (sockname)."""

    def __init__(self, peer: str, own: str) -> None:
        self.extra = {"peername": (peer, 50000), "sockname": (own, 8080)}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


def guarded(api: LocalApi, peer: str, path: str, token: str = "") -> web.Response:
    """What the local API's guard answers a POST from `peer` to a server at 192.0.2.1."""
    from aiohttp.test_utils import make_mocked_request

    async def reached(_: web.Request) -> web.StreamResponse:
        return web.Response(status=204, text="reached")

    request = make_mocked_request("POST", path, headers={"Authorization": token} if token else {},
                                  transport=_Transport(peer, "192.0.2.1"))  # fmt: skip
    answer = asyncio.run(api.guard(request, reached))
    assert isinstance(answer, web.Response)
    return answer


@pytest.mark.parametrize(("peer", "path", "token", "allowed"), [
    ("192.0.2.7", "/notify", "", False),  # a phone on the LAN may not push...
    ("192.0.2.7", "/@connections/abc", "", False),  # ...nor close someone's connection
    ("192.0.2.7", "/ws/careconnect", "", True),  # ...but connects
    ("192.0.2.7", "/notify", "Bearer s3cret", True),  # the backend team, with the token
    ("192.0.2.7", "/notify", "Bearer guess", False),
    ("127.0.0.1", "/notify", "", True),  # this machine: loopback...
    ("192.0.2.1", "/local/@connections/abc", "", True),  # ...or the server's own address
])  # fmt: skip
def test_pushing_and_closing_are_for_this_machine_or_a_token(peer: str, path: str, token: str, allowed: bool) -> None:
    assert guarded(LocalApi("h:1", api_token="s3cret"), peer, path, token).status == (204 if allowed else 403)


def test_without_a_token_remote_callers_are_told_how_to_be_allowed() -> None:
    answer = guarded(LocalApi("h:1"), "192.0.2.7", "/notify", "Bearer ")
    assert answer.status == 403 and "CC_LOCAL_API_TOKEN" in json.loads(answer.text or "")["message"]


def test_the_notifications_and_calls_paths_speak_as_their_java_handlers(
    local_api: tuple[str, LocalApi], users: Users
) -> None:
    """The app's MessagingService connects to /ws/notifications and sends REGISTER_USER:<id> as
    text (frontend/lib/services/messaging_service.dart); CallNotificationService uses /ws/calls."""
    base, _ = local_api

    async def session() -> tuple[list[str], str]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(ws_url(base, "/ws/notifications")) as ws:
                await ws.send_str("REGISTER_USER:5")
                await ws.send_str("ping?")
                texts = [(await asyncio.wait_for(ws.receive(), timeout=10)).data for _ in range(2)]
            async with http.ws_connect(ws_url(base, "/ws/calls")) as ws:
                await ws.send_json({"type": "heartbeat"})
                greeting = json.loads((await asyncio.wait_for(ws.receive(), timeout=10)).data)["message"]
        return texts, greeting

    assert asyncio.run(session()) == (["User registered: 5", "Echo: ping?"], "Connected to CareConnect call service")
