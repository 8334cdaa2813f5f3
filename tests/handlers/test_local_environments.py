"""The local API's execution environments on the real PostgreSQL: each concurrent invocation has
a process and a connection of its own up to the function's reserved concurrency (the budget's
split), a throttled `$connect` is answered as API Gateway answers it, idle environments are
reclaimed with their connections, `--single-process` keeps one connection, and no worker
outlives the server. The app's own frames (authenticate with a backend-minted token, ping)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from generator.budget import split
from handlers.local import LocalApi
from handlers.local_environments import Environments
from handlers.store import ConnectionStore
from tests.handlers.careconnect import mint
from tests.handlers.conftest import SECRET, Users, table
from tests.handlers.test_local_api import frames_until, serve_handlers_here, ws_url
from tests.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]
BUDGET = 10  # the smallest the template allows: $connect 3, $default 4, notify 2, $disconnect 1
WAIT_S = 30  # a bound on waiting for a state, never an asserted duration


def handler_connections(owner_url: str, role: str, *, waiting: bool = False) -> int:
    """The handlers' role's backends in pg_stat_activity (those waiting on a lock, with `waiting`)."""
    with psycopg.connect(owner_url, autocommit=True) as owner:
        query = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
        if waiting:
            query += " AND wait_event_type = 'Lock'"
        row = owner.execute(query.encode(), (role,)).fetchone()
    return int(row[0]) if row else 0


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {WAIT_S} s")
        time.sleep(0.05)


@pytest.fixture
def role(handlers_url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(handlers_url)["user"]  # type: ignore[return-value]


@pytest.fixture
def quiet_in_process() -> None:
    """This process's own handler connection closed, so counts are the environments' alone."""
    from handlers import runtime

    if runtime.store.cache_info().currsize:
        runtime.store().db.close()
    runtime.store.cache_clear()
    runtime.users.cache_clear()


@contextmanager
def serving(monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[tuple[str, Any]]:
    """The local API on a free port in a thread of its own (its event loop), with environments
    (the budget's, started from this test's environment: `options`) unless `single` is given,
    stopped on the way out."""
    port = serve_handlers_here(monkeypatch)
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_MS", "60000")  # the tests hold a lock on the table
    single = options.pop("single", False)
    environments = None if single else Environments(BUDGET, **{"warm": 0, **options})
    api = LocalApi(f"127.0.0.1:{port}", environments=environments)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(api.app())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(runner.setup(), loop).result(timeout=60)
    asyncio.run_coroutine_threadsafe(web.TCPSite(runner, "127.0.0.1", port).start(), loop).result(timeout=10)
    try:
        yield f"http://127.0.0.1:{port}", api
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


@contextmanager
def table_locked(owner_url: str) -> Iterator[None]:
    """$connect's INSERT waits while this lasts: its invocations stay in flight, each holding its
    environment and that environment's connection."""
    with psycopg.connect(owner_url) as owner:
        owner.execute(b"LOCK TABLE websocket_connections IN SHARE MODE")
        yield
        owner.rollback()


async def authenticate(base: str, email: str) -> str:
    """The app's session: connect to /ws/careconnect, authenticate with its backend token."""
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(base)) as ws:
        await ws.send_json({"type": "authenticate", "token": mint(SECRET.key, email, "PATIENT")})
        return str((await frames_until(ws, "authentication-success"))[-1]["userEmail"])


async def handshake(base: str) -> tuple[int, str]:
    """The upgrade request as the app's WebSocket client sends it: the status and body answered."""
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}  # fmt: skip
    async with aiohttp.ClientSession() as http, http.get(f"{base}/ws/careconnect", headers=upgrade) as answer:
        return answer.status, await answer.text() if answer.status != 101 else ""


class Sessions(threading.Thread):
    """App sessions running on a loop of their own while the test watches PostgreSQL."""

    def __init__(self, base: str, emails: list[str]) -> None:
        super().__init__(daemon=True)
        self.base, self.emails, self.authenticated = base, emails, list[str]()
        self.start()

    def run(self) -> None:
        async def everyone() -> list[str]:
            return list(await asyncio.gather(*(authenticate(self.base, email) for email in self.emails)))

        self.authenticated = asyncio.run(everyone())

    def result(self) -> list[str]:
        self.join(timeout=WAIT_S)
        return sorted(self.authenticated)


def test_concurrent_connects_hold_a_connection_each_up_to_the_reserved_concurrency_then_are_throttled(
    monkeypatch: pytest.MonkeyPatch, owner_url: str, role: str, users: Users, quiet_in_process: None
) -> None:
    reserved = split(BUDGET)["Connect"]
    emails = [f"storm{n}@example.org" for n in range(reserved)]
    for email in emails:
        users.add(email, "PATIENT", email)
    before = handler_connections(owner_url, role)
    with serving(monkeypatch) as (base, api):
        with table_locked(owner_url):
            sessions = Sessions(base, emails)
            until(lambda: handler_connections(owner_url, role, waiting=True) == reserved,
                  f"{reserved} $connects waiting on the table")  # fmt: skip
            in_flight = handler_connections(owner_url, role) - before
            throttled = [asyncio.run(handshake(base)) for _ in range(2)]
        assert sessions.result() == sorted(emails)
        assert api.environments.count("connect") == reserved
    assert in_flight == reserved  # one connection per environment, no more
    assert throttled == [(500, '{"message": "Internal server error"}')] * 2
    assert api.environments.throttles["connect"] >= 2


def test_an_idle_environment_is_reclaimed_and_its_connection_closed(
    monkeypatch: pytest.MonkeyPatch, owner_url: str, role: str, users: Users, quiet_in_process: None
) -> None:
    users.add("idle@example.org", "PATIENT", "Idle")
    before = handler_connections(owner_url, role)
    with serving(monkeypatch, idle_seconds=0.5) as (base, api):
        assert asyncio.run(authenticate(base, "idle@example.org")) == "idle@example.org"
        until(lambda: api.environments.count() == 0, "reclaimed")
        until(lambda: handler_connections(owner_url, role) == before, "closed in PostgreSQL")


def test_warm_environments_start_connected_and_stay(
    monkeypatch: pytest.MonkeyPatch, owner_url: str, role: str, quiet_in_process: None
) -> None:
    before = handler_connections(owner_url, role)
    with serving(monkeypatch, warm=1, idle_seconds=0.05) as (_, api):
        assert handler_connections(owner_url, role) - before == 4  # one per function, connected at start
        api.environments.reclaim_idle()  # provisioned: never reclaimed
        assert api.environments.count() == 4


def test_single_process_keeps_one_connection(
    monkeypatch: pytest.MonkeyPatch, owner_url: str, role: str, users: Users, store: ConnectionStore,
    quiet_in_process: None,
) -> None:  # fmt: skip
    emails = [f"single{n}@example.org" for n in range(4)]
    for email in emails:
        users.add(email, "PATIENT", email)
    before = handler_connections(owner_url, role)
    with serving(monkeypatch, single=True) as (base, api):
        assert api.environments is None
        with table_locked(owner_url):
            sessions = Sessions(base, emails)
            until(lambda: handler_connections(owner_url, role, waiting=True) == 1,
                  "the one connection waiting on the table")  # fmt: skip
            in_flight = handler_connections(owner_url, role) - before
        assert sessions.result() == sorted(emails)
    assert in_flight == 1  # the other $connects wait for it in this process, none is throttled
    assert len([r for r in table(store) if r["user_email"] in emails]) == 4


def descendants(pid: int) -> set[int]:
    """Every process under `pid` (the workers are the fork server's children)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_no_worker_outlives_the_server(stop: signal.Signals, owner_url: str, role: str, users: Users,
                                       quiet_in_process: None) -> None:  # fmt: skip
    """`python -m handlers.local` with its environments: stopped by Ctrl-C or killed outright,
    every worker process ends and every connection it held closes."""
    users.add("orphan@example.org", "PATIENT", "Orphan")
    before = handler_connections(owner_url, role)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"}
    server = subprocess.Popen([sys.executable, "-m", "handlers.local", "--port", str(port), "--connection-budget",
                               str(BUDGET)], env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stderr is not None
        banner = server.stderr.readline()
        assert f"ws://127.0.0.1:{port}/ws/careconnect" in banner, banner
        threading.Thread(target=server.stderr.read, daemon=True).start()  # the log, drained
        assert asyncio.run(authenticate(f"http://127.0.0.1:{port}", "orphan@example.org")) == "orphan@example.org"
        workers = descendants(server.pid)
        assert len(workers) >= 4 and handler_connections(owner_url, role) > before
        server.send_signal(stop)
        server.wait(timeout=WAIT_S)
        until(lambda: not any(alive(pid) for pid in workers), "every worker gone")
        until(lambda: handler_connections(owner_url, role) == before, "every connection closed")
    finally:
        server.kill()
        server.wait()
    assert stop == signal.SIGKILL or server.returncode == 0


@pytest.mark.parametrize("given", ["7", "forty"])
def test_a_bad_connection_budget_is_refused_with_what_to_give(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    from handlers.local import main

    with pytest.raises(SystemExit) as stopped:
        main(["--connection-budget", given])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert f"'{given}': give a number of connections, at least 10" in error and "unreserved" in error


def test_ctrl_c_disconnects_everyone_beyond_the_disconnect_concurrency(
    monkeypatch: pytest.MonkeyPatch, store: ConnectionStore, quiet_in_process: None
) -> None:
    """More connections open than `$disconnect` has environments (1 at budget 10): shutting down
    waits for an environment for each, so no row is left active."""
    open_now = split(BUDGET)["Disconnect"] + 2

    async def connected(base: str) -> tuple[aiohttp.ClientSession, list[aiohttp.ClientWebSocketResponse]]:
        http = aiohttp.ClientSession()
        sockets = [await http.ws_connect(ws_url(base)) for _ in range(open_now)]
        for ws in sockets:
            await ws.send_json({"type": "ping"})
            await frames_until(ws, "heartbeat-response")
        return http, sockets

    with serving(monkeypatch) as (base, _):
        loop = asyncio.new_event_loop()
        http, sockets = loop.run_until_complete(connected(base))
        assert [r["is_active"] for r in table(store)] == [True] * open_now
    # serving's exit is what Ctrl-C does: close_all, every $disconnect, then the environments stop
    for ws in sockets:
        loop.run_until_complete(ws.close())
    loop.run_until_complete(http.close())
    loop.close()
    assert [r["is_active"] for r in table(store)] == [False] * open_now
