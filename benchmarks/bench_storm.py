"""The reconnect storm: N clients connect, authenticate with a backend-minted token and close,
against a throwaway PostgreSQL with max_connections=100, arriving open-loop at 500/s (API
Gateway's default quota, `--rate`) and then all at once. Clients back off as README tells the
app (full jitter, base 0.5 s, cap 8 s): a refused upgrade is retried, a throttled message
("Internal server error") resent.

`--target local` (the default; 2,000 clients): `python -m handlers.local`, first as one process
on one connection (`--single-process`: before), then with its execution environments (a worker
process and a PostgreSQL connection each) with the connection budget and, the baseline, without
it (`unreserved`, at most `--in-flight` environments: this machine's stand-in for Lambda's
account concurrency). The budget's environments start warm (what an outage leaves behind), the
unbounded run with as many in total. Throttles and database errors are the server's log lines.

`--target emulator` (100 clients): through the emulator's WebSocket API and the real handler
functions (each concurrent invocation in its own Lambda environment with its own PostgreSQL
connection), with the budget (reserved concurrency from generator/connections.py) and without
it; the emulator caps invocations in flight at `--in-flight` (default 160: above
max_connections, so the baseline shows what an unbounded Lambda does to PostgreSQL, without
starting more processes than 2 cores bear).

Figures: connects/s, p50/p99 connect (first attempt to open, backoffs included) and round trip
(authenticate -> authentication-success, resends included; of the clients that got through),
refused upgrades, resent messages, throttles, database errors (the handlers' "database
unavailable" log lines), clients lost (other: timeouts, gave up), peak pg_stat_activity of the
handlers' role, rows still active after every client closed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from tests.handlers.careconnect import BackendSecret, mint  # noqa: E402

# The storm is 2,000 clients (--clients 2000); scripts/bench runs 100: every Lambda
# environment here is a process, and on 2 shared cores 2,000 take far longer than a few minutes.
DEFAULT_CLIENTS = 100
LOCAL_CLIENTS = 2000  # the storm, against `python -m handlers.local` (run_local)
RATE = 500  # API Gateway's new connections per second per account and region
MAX_CONNECTIONS = 100
ROLE, PASSWORD = "cc_websocket_handlers", "storm-bench"
REGION = "eu-west-1"
ATTEMPTS, BACKOFF_BASE_S, BACKOFF_CAP_S = 10, 0.5, 8.0  # README's reconnect advice to the app
RECEIVE_TIMEOUT_S = 10  # a handler that answered 500 sends no frame: the app gives up waiting


@dataclass
class Outcome:
    connect_s: list[float] = field(default_factory=list)
    trip_s: list[float] = field(default_factory=list)
    refused: int = 0
    resent: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def _client(url: str, token: str, start_at: float, outcome: Outcome) -> None:
    """Connects as README tells the app to: a refused upgrade (HTTP 500) is retried after a
    full-jitter exponential backoff; then authenticates and closes."""
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    started = time.perf_counter()
    for attempt in range(ATTEMPTS):
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(url, timeout=60) as socket:
                outcome.connect_s.append(time.perf_counter() - started)
                sent = time.perf_counter()
                await socket.send_str(json.dumps({"type": "authenticate", "token": token}))
                for retry in range(ATTEMPTS):
                    frame = json.loads((await socket.receive(timeout=RECEIVE_TIMEOUT_S)).data)
                    if frame.get("type") == "authentication-success":
                        outcome.trip_s.append(time.perf_counter() - sent)
                        return
                    if frame.get("message") == "Internal server error":  # throttled: resend after a backoff
                        outcome.resent += 1
                        await asyncio.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**retry)))
                        await socket.send_str(json.dumps({"type": "authenticate", "token": token}))
                    elif frame.get("type") != "connection-established":  # the first message is also greeted
                        raise RuntimeError(str(frame.get("type") or frame.get("message")))
                raise RuntimeError("gave up")
        except aiohttp.WSServerHandshakeError as error:
            outcome.refused += 1
            if error.status != 500:
                outcome.errors[f"HTTP {error.status}"] = outcome.errors.get(f"HTTP {error.status}", 0) + 1
                return
            await asyncio.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
        except Exception as error:
            name = str(error) if isinstance(error, RuntimeError) else type(error).__name__
            outcome.errors[name] = outcome.errors.get(name, 0) + 1
            return
    outcome.errors["gave up"] = outcome.errors.get("gave up", 0) + 1


def run_clients(url: str, tokens: list[str], rate: float | None) -> Outcome:
    """In a process of its own (the emulator keeps the bench's): arrivals open-loop at `rate`
    per second, or all at once."""
    outcome = Outcome()

    async def crowd() -> None:
        begin = time.perf_counter() + 0.2
        await asyncio.gather(*(_client(url, t, begin + (i / rate if rate else 0.0), outcome)
                               for i, t in enumerate(tokens)))  # fmt: skip

    started = time.perf_counter()
    asyncio.run(crowd())
    outcome.seconds = time.perf_counter() - started
    return outcome


class Peak:
    """Samples pg_stat_activity for the handlers' role (as the superuser: its reserved slots)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._connection = psycopg.connect(url, autocommit=True)
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            row = self._connection.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (ROLE,))
            self.peak = max(self.peak, int(row.fetchone()[0]))  # type: ignore[index]

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self._connection.close()
        return self.peak


def _quantile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def _prepare(owner_url: str, clients: int) -> str:
    """Schema, users and the handlers' role with README's grants; the handlers' URL."""
    import psycopg

    from handlers.migrate import migrate
    from tests.handlers.careconnect import USERS_DDL
    from tests.handlers.conftest import documented_grants

    with psycopg.connect(owner_url, autocommit=True) as owner:
        migrate(owner)
        owner.execute(USERS_DDL.encode())
        owner.execute("""INSERT INTO users (email, password, role, email_verified, status, name)
                         SELECT 'user' || n || '@example.org', 'x', 'PATIENT', TRUE, 'ACTIVE', 'User ' || n
                         FROM generate_series(1, %s) AS n""", (clients,))  # fmt: skip
        owner.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'".encode())
        for grant in documented_grants(ROLE, ROLE):
            owner.execute(grant.encode())
    return owner_url.replace("postgres@", f"{ROLE}:{PASSWORD}@")


def _deploy(emulator: str, handlers_url: str, secret: BackendSecret) -> tuple[str, dict[str, str]]:
    """The handler functions from the release zip and a WebSocket API routing to them, as the
    templates make them; the API id and the function names by route."""
    import boto3

    from generator.model import ROUTE_HANDLERS
    from rollout import package
    from tests.emulator.lambda_zips import LAMBDA_TRUST

    zip_bytes = package.build(package.Target(architecture="x86_64")).path.read_bytes()
    lam, apis = (boto3.client(s, region_name=REGION, endpoint_url=emulator) for s in ("lambda", "apigatewayv2"))
    role = boto3.client("iam", region_name=REGION, endpoint_url=emulator).create_role(
        RoleName="storm", AssumeRolePolicyDocument=LAMBDA_TRUST
    )["Role"]["Arn"]
    env = {"DATABASE_AUTH": "url", "DATABASE_URL": handlers_url, "JWT_SECRET": secret.text,
           "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT": f"{emulator}/prod", "CONNECTION_TTL_MINUTES": "120"}  # fmt: skip
    api_id = apis.create_api(Name="storm", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")[
        "ApiId"
    ]
    names = {}
    for function in ROUTE_HANDLERS:
        name = f"cc-websocket-{function.suffix}"
        arn = lam.create_function(FunctionName=name, Runtime="python3.14", Role=role, Handler=function.handler,
                                  Code={"ZipFile": zip_bytes}, Timeout=29, MemorySize=256,
                                  Environment={"Variables": env})["FunctionArn"]  # fmt: skip
        uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
        target = apis.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri)
        apis.create_route(ApiId=api_id, RouteKey=function.route_key, Target=f"integrations/{target['IntegrationId']}")
        names[function.logical] = name
    apis.create_stage(ApiId=api_id, StageName="prod")
    return str(api_id), names


def _count_logs(text: str) -> int:
    from moto.logs.models import logs_backends

    backend = logs_backends["123456789012"][REGION]
    return sum(text in event.message for group in backend.groups.values()
               for stream in group.streams.values() for event in stream.events)  # fmt: skip


def _throttles() -> int:
    from moto.cloudwatch.models import cloudwatch_backends

    data = cloudwatch_backends["123456789012"][REGION].metric_data
    return int(sum(d.value for d in data if d.namespace == "AWS/Lambda" and d.name == "Throttles"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("local", "emulator"), default="local")
    parser.add_argument("--clients", type=int, help=f"local: {LOCAL_CLIENTS:,}; emulator: {DEFAULT_CLIENTS}")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--in-flight", type=int, default=160)
    parser.add_argument("--rate", type=float, default=RATE, help="arrivals per second of the open-loop runs")
    args = parser.parse_args()
    if args.clients is None:
        args.clients = LOCAL_CLIENTS if args.target == "local" else DEFAULT_CLIENTS
    if args.target == "local":
        run_local(args.clients, args.budget, args.in_flight, args.rate)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # unwinds: the cluster and the functions stop
    logging.getLogger("emulator").setLevel(logging.ERROR)

    import boto3
    import psycopg
    from moto.awslambda.models import lambda_backends

    import emulator
    from emulator import functions
    from generator.connections import split
    from tests.postgres import throwaway_cluster

    secret = BackendSecret.generate()
    tokens = [mint(secret.key, f"user{n}@example.org", "PATIENT") for n in range(1, args.clients + 1)]
    with throwaway_cluster({"max_connections": str(MAX_CONNECTIONS)}) as owner_url:
        if owner_url is None:
            sys.exit("bench_storm needs the PostgreSQL server binaries (initdb, pg_ctl) for its throwaway cluster")
        handlers_url = _prepare(owner_url, args.clients)
        os.environ["EMULATOR_INTEGRATIONS_IN_FLIGHT"] = str(args.in_flight)
        with emulator.running_emulator() as endpoint:
            api_id, names = _deploy(endpoint, handlers_url, secret)
            url = emulator.websocket_url(api_id, "prod")
            lam = boto3.client("lambda", region_name=REGION, endpoint_url=endpoint)
            print(f"reconnect storm: {args.clients:,} clients (connect, authenticate, close) through the emulator's "
                  f"WebSocket API, PostgreSQL max_connections={MAX_CONNECTIONS}, {args.in_flight} invocations "
                  "in flight at most on this machine")  # fmt: skip
            header = (f"  {'':22} {'connects/s':>10} {'connect p50/p99 ms':>19} {'trip p50/p99 ms':>17} "
                      f"{'refused':>7} {'resent':>6} {'throttles':>9} {'db errors':>9} {'other':>5} {'peak conns':>10} "
                      f"{'active after':>12}")  # fmt: skip
            print(header)
            spawn = multiprocessing.get_context("spawn")
            for budget in (args.budget, None):
                shares = split(budget) if budget else {}
                for logical, name in names.items():
                    if budget:
                        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=shares[logical])
                    else:
                        lam.delete_function_concurrency(FunctionName=name)
                for rate in (args.rate, None):
                    with psycopg.connect(owner_url, autocommit=True) as owner:
                        owner.execute("TRUNCATE websocket_connections")
                    for logical, name in names.items():  # what the outage left warm: the budget's environments
                        function = lambda_backends["123456789012"][REGION].get_function(name)
                        functions._running[-1].prewarm(function, split(args.budget)[logical])
                    throttles, db_errors, peak = _throttles(), _count_logs("database unavailable"), Peak(owner_url)
                    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as clients:
                        outcome = clients.submit(run_clients, url, tokens, rate).result()
                    with psycopg.connect(owner_url, autocommit=True) as owner:
                        active, quiet = -1, 0
                        while quiet < 10:  # the last $disconnects finish after the clients' closes
                            now = owner.execute("SELECT count(*) FROM websocket_connections WHERE is_active")
                            count = int(now.fetchone()[0])  # type: ignore[index]
                            quiet, active = (quiet + 1 if count == active else 0), count
                            time.sleep(0.2)
                    most = peak.stop()
                    functions._running[-1].stop_all()  # the next run starts cold, as after a deploy
                    label = f"{'budget ' + str(budget) if budget else 'no budget'}, " + (
                        f"{rate:g}/s" if rate else "all at once"
                    )
                    other = sum(outcome.errors.values())
                    print(f"  {label:22} {len(outcome.connect_s) / outcome.seconds:10.1f} "
                          f"{_quantile(outcome.connect_s, 50):8.1f}/{_quantile(outcome.connect_s, 99):<8.1f}  "
                          f"{_quantile(outcome.trip_s, 50):7.1f}/{_quantile(outcome.trip_s, 99):<8.1f} "
                          f"{outcome.refused:7d} {outcome.resent:6d} {_throttles() - throttles:9d} "
                          f"{_count_logs('database unavailable') - db_errors:9d} {other:5d} {most:10d} "
                          f"{active:12d}")  # fmt: skip
                    if outcome.errors:
                        print(f"    other errors: {dict(sorted(outcome.errors.items()))}")


# --- the local API (`--target local`) ------------------------------------------------------------


@dataclass
class LocalRun:
    label: str
    options: list[str]
    warm: int


def _serve_local(
    handlers_url: str, secret: BackendSecret, options: list[str], log: Path
) -> tuple[subprocess.Popen[str], int]:
    """`python -m handlers.local` with these options on the bench's database; its port, once it listens."""
    from tests.ports import free_port

    port = free_port()
    env = {**os.environ, "DATABASE_URL": handlers_url, "DATABASE_AUTH": "url", "JWT_SECRET": secret.text,
           "CONNECTION_TTL_MINUTES": "120"}  # fmt: skip
    env.pop("AWS_WEBSOCKET_API_GATEWAY_ENDPOINT", None)
    output = log.open("w")
    server = subprocess.Popen([sys.executable, "-m", "handlers.local", "--port", str(port), *options], cwd=REPO,
                              env=env, stdout=output, stderr=output, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while "WebSocket API on" not in log.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"handlers.local did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return server, port


def run_local(clients: int, budget: int, in_flight: int, rate_per_s: float = RATE) -> None:
    """The storm against the local API: one process on one connection (before), then execution
    environments with the budget and without it (the baseline), each at 500/s and all at once."""
    import psycopg

    from tests.postgres import throwaway_cluster

    secret = BackendSecret.generate()
    tokens = [mint(secret.key, f"user{n}@example.org", "PATIENT") for n in range(1, clients + 1)]
    per_function = max(1, budget // 4)  # the unbounded run starts with as many warm in total
    runs = [
        LocalRun("single process", ["--single-process"], 0),
        LocalRun(f"budget {budget}", ["--connection-budget", str(budget), "--warm-environments", str(budget)], budget),
        LocalRun(
            "no budget",
            [
                "--connection-budget",
                "unreserved",
                "--warm-environments",
                str(per_function),
                "--account-concurrency",
                str(in_flight),
            ],
            per_function * 4,
        ),
    ]
    load = os.getloadavg()[0]
    with throwaway_cluster({"max_connections": str(MAX_CONNECTIONS)}) as owner_url, \
            tempfile.TemporaryDirectory(prefix="bench-storm-") as work:  # fmt: skip
        if owner_url is None:
            sys.exit("bench_storm needs the PostgreSQL server binaries (initdb, pg_ctl) for its throwaway cluster")
        handlers_url = _prepare(owner_url, clients)
        print(f"reconnect storm: {clients:,} clients (connect, authenticate with a backend token, close) against "
              f"`python -m handlers.local`, PostgreSQL max_connections={MAX_CONNECTIONS}; no budget: at most "
              f"{in_flight} environments (--account-concurrency); load average {load:.1f} at start (2 shared "
              "cores)")  # fmt: skip
        print(f"  {'':26} {'connects/s':>10} {'connect p50/p99 ms':>19} {'trip p50/p99 ms':>17} {'refused':>7} "
              f"{'resent':>6} {'throttles':>9} {'db errors':>9} {'other':>5} {'peak conns':>10} "
              f"{'active after':>12}")  # fmt: skip
        spawn = multiprocessing.get_context("spawn")
        p99: dict[str, float] = {}
        for run in runs:
            for rate in (rate_per_s, None):
                with psycopg.connect(owner_url, autocommit=True) as owner:
                    owner.execute("TRUNCATE websocket_connections")
                log = Path(work) / "server.log"
                server, port = _serve_local(handlers_url, secret, run.options, log)
                peak = Peak(owner_url)
                try:
                    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                        url = f"ws://127.0.0.1:{port}/ws/careconnect"
                        outcome = pool.submit(run_clients, url, tokens, rate).result()
                    active = _settled_active(owner_url)
                finally:
                    server.send_signal(signal.SIGINT)
                    server.wait(timeout=120)
                most = peak.stop()
                text = log.read_text()
                throttles = text.count("Rate Exceeded")
                db_errors = text.count('"message": "database unavailable"')
                label = f"{run.label}, " + (f"{rate:g}/s" if rate else "all at once")
                p99[label] = _quantile(outcome.trip_s, 99)
                other = sum(outcome.errors.values())
                print(f"  {label:26} {len(outcome.connect_s) / outcome.seconds:10.1f} "
                      f"{_quantile(outcome.connect_s, 50):8.1f}/{_quantile(outcome.connect_s, 99):<8.1f}  "
                      f"{_quantile(outcome.trip_s, 50):7.1f}/{p99[label]:<8.1f} "
                      f"{outcome.refused:7d} {outcome.resent:6d} {throttles:9d} {db_errors:9d} {other:5d} {most:10d} "
                      f"{active:12d}", flush=True)  # fmt: skip
                if outcome.errors:
                    print(f"    other errors: {dict(sorted(outcome.errors.items()))}")
        base = p99[f"no budget, {rate_per_s:g}/s"]
        for label in (f"single process, {rate_per_s:g}/s", f"budget {budget}, {rate_per_s:g}/s"):
            print(f"  p99 round trip at {rate_per_s:g}/s, {label.split(',')[0]}: {p99[label]:.1f} ms "
                  f"({p99[label] / base:.2f}x the no-budget baseline's {base:.1f} ms; target 50 ms)")  # fmt: skip


def _settled_active(owner_url: str) -> int:
    """Rows still active once the last `$disconnect`s have finished (the count stops changing)."""
    import psycopg

    with psycopg.connect(owner_url, autocommit=True) as owner:
        active, quiet = -1, 0
        while quiet < 10:
            now = owner.execute("SELECT count(*) FROM websocket_connections WHERE is_active")
            count = int(now.fetchone()[0])  # type: ignore[index]
            quiet, active = (quiet + 1 if count == active else 0), count
            time.sleep(0.2)
    return active


if __name__ == "__main__":
    main()
