"""Lambda's execution environments for the local WebSocket API: each concurrent invocation of a
function runs in an environment of its own, a worker process with its own PostgreSQL connection,
so the local API holds connections as Lambda does (they follow recent peak concurrency).

- Per function (`connect`, `disconnect`, `default`, `notify`) a pool of workers, started on
  demand while the function's reserved concurrency allows: the connection budget's split
  (generator/budget.py, the numbers the compute template maps). Beyond it the invocation is
  throttled (`Throttled`), and the local API answers as API Gateway answers a throttled
  integration. An account limit bounds all of them together, as Lambda's account concurrency.
- Environments are kept warm and reused; one idle for `idle_seconds` is reclaimed (its process
  ends, and with it its connection). `warm` environments per function start with the server and
  are never reclaimed, as provisioned concurrency: they open their connection and the management
  API's client at start, so the first callers pay no cold start.
- Workers fork from a server that has already imported the handlers (multiprocessing's
  forkserver), so a cold start is a fork and the handlers' init, not a fresh interpreter.
- No orphans: a worker ignores Ctrl-C (the server decides when it stops, after the last
  `$disconnect`), and ends when its pipe to the server closes, which the kernel does when the
  server exits however it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from generator.budget import split

log = logging.getLogger("handlers.local")

# The local API's modules and the functions (generator/model.py's logical names) they are.
FUNCTIONS = {"connect": "Connect", "disconnect": "Disconnect", "default": "Default", "notify": "Notify"}
IDLE_SECONDS = 300.0  # Lambda reclaims idle environments after minutes (not documented; the emulator's)
ACCOUNT_CONCURRENCY = 1000  # Lambda's default concurrent executions per account and region
THROTTLE_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_REASON = "ConcurrentInvocationLimitExceeded"
# Imported once in the fork server, so a new environment starts with them (not handlers.local
# itself: a worker re-runs the server's main module, whose imports are then all loaded).
PRELOAD = ["aiohttp.web", "handlers.local_environments", "handlers.local_preload"]


class Throttled(Exception):
    """Lambda's TooManyRequestsException: every environment the function may have is busy."""

    def __init__(self, function: str, reason: str) -> None:
        super().__init__(f"{function}: Rate Exceeded. ({reason})")
        self.function, self.reason = function, reason


class FunctionError(Exception):
    """The handler raised, or its environment died mid-invocation (Lambda: Unhandled / Runtime.ExitError)."""


def _worker(pipe: Connection, module: str, environment: dict[str, str], warm: bool) -> None:
    """One execution environment: the function's init, then invocations one at a time until the
    server closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the server stops us
    os.environ.clear()
    os.environ.update(environment)
    from handlers import aws, runtime

    for cached in (runtime.settings, runtime.store, runtime._sender, runtime.verifier, runtime.users):
        cached.cache_clear()
    aws.management_client.cache_clear()
    handler = __import__(f"handlers.{module}", fromlist=["handler"]).handler
    if warm:  # as an init that connects: the connection and the management API's client, ready
        try:
            runtime.store().db.run("SELECT 1")
            if runtime.settings().management_endpoint:
                runtime.management_sender()
        except Exception as error:  # the first invocation reports it, with what to fix
            log.warning("environment warm-up failed: %s", type(error).__name__)
    pipe.send(("ready", os.getpid()))
    try:
        _serve(pipe, handler)
    finally:  # a clean goodbye to PostgreSQL rather than a dropped socket
        if runtime.store.cache_info().currsize:
            runtime.store().db.close()


def _serve(pipe: Connection, handler: Any) -> None:
    while True:
        try:
            request = pipe.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        event, request_id = request
        context = type("Context", (), {"aws_request_id": request_id})()
        try:
            answer: tuple[str, Any] = ("ok", handler(event, context))
        except Exception as error:
            answer = ("error", f"{type(error).__name__}: {error}")
        try:
            pipe.send(answer)
        except OSError:
            return


@dataclass
class Environment:
    process: BaseProcess
    pipe: Connection
    busy: bool = True
    provisioned: bool = False
    last_used: float = field(default_factory=time.monotonic)


class Environments:
    """Every function's environments, driven from the server's event loop."""

    def __init__(
        self,
        budget: int | None,
        *,
        idle_seconds: float = IDLE_SECONDS,
        warm: int = 1,
        account_concurrency: int = ACCOUNT_CONCURRENCY,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        shares = split(budget) if budget is not None else {}
        self.limits: dict[str, int | None] = {m: shares.get(f) if shares else None for m, f in FUNCTIONS.items()}
        self.idle_seconds, self.warm, self.account_concurrency = idle_seconds, warm, account_concurrency
        self.environment = dict(environment if environment is not None else os.environ)
        self.pools: dict[str, list[Environment]] = {module: [] for module in FUNCTIONS}
        self.throttles: dict[str, int] = dict.fromkeys(FUNCTIONS, 0)
        self._starting: dict[str, int] = dict.fromkeys(FUNCTIONS, 0)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._reclaimer: asyncio.Task[None] | None = None
        self._stopped = False

    # --- what the server calls ----------------------------------------------------------------

    async def start(self) -> None:
        """The warm environments (provisioned), then the reclaimer."""
        started = [
            self._start(module, provisioned=True)
            for module, limit in self.limits.items()
            for _ in range(min(self.warm, limit if limit is not None else self.warm))
        ]
        for environment in await asyncio.gather(*started):
            environment.busy = False
        self._reclaimer = asyncio.create_task(self._reclaim_loop())

    async def invoke(self, module: str, event: Any, request_id: str, *, wait: bool = False) -> dict[str, Any]:
        """The function's answer from a free environment (a new one while the function's reserved
        concurrency allows); Throttled beyond it, or with `wait` once one is free (as Lambda's
        queue does for an asynchronous invocation)."""
        while True:
            try:
                environment = await self._acquire(module)
                break
            except Throttled:
                if not wait or self._stopped:
                    raise
                await asyncio.sleep(0.05)
        try:
            environment.pipe.send((event, request_id))
            status, answer = await self._receive(environment)
        except (EOFError, OSError) as error:  # the environment died: Lambda's Runtime.ExitError
            self._discard(module, environment)
            raise FunctionError(f"Runtime.ExitError: the {module} environment exited") from error
        finally:
            environment.busy, environment.last_used = False, time.monotonic()
        if status != "ok":
            raise FunctionError(answer)
        result: dict[str, Any] = answer
        return result

    async def stop(self) -> None:
        """Every environment ends, and waits for it (no orphans)."""
        self._stopped = True
        if self._reclaimer is not None:
            self._reclaimer.cancel()
        everyone = [e for pool in self.pools.values() for e in pool]
        for pool in self.pools.values():
            pool.clear()
        await asyncio.gather(*(asyncio.to_thread(_end, e) for e in everyone))

    def count(self, module: str | None = None) -> int:
        """Environments running (warm or busy) of one function, or of all."""
        return sum(len(p) for m, p in self.pools.items() if module in (None, m))

    def reclaim_idle(self) -> None:
        """Environments idle longer than `idle_seconds` end, as Lambda reclaims them."""
        cutoff = time.monotonic() - self.idle_seconds
        for module, pool in self.pools.items():
            for environment in [e for e in pool if not (e.busy or e.provisioned) and e.last_used < cutoff]:
                self._discard(module, environment)
                log.info("environment reclaimed", extra={"function": module, "pid": environment.process.pid})

    # --- the pools -------------------------------------------------------------------------------

    async def _acquire(self, module: str) -> Environment:
        if self._stopped:
            raise Throttled(module, ACCOUNT_REASON)
        pool, limit = self.pools[module], self.limits[module]
        in_use = sum(e.busy for e in pool) + self._starting[module]
        if limit is not None and in_use >= limit:
            self.throttles[module] += 1
            raise Throttled(module, THROTTLE_REASON)
        for environment in pool:
            if not environment.busy:
                environment.busy = True
                return environment
        busy_everywhere = sum(e.busy for p in self.pools.values() for e in p) + sum(self._starting.values())
        if busy_everywhere >= self.account_concurrency:
            self.throttles[module] += 1
            raise Throttled(module, ACCOUNT_REASON)
        return await self._start(module)

    async def _start(self, module: str, provisioned: bool = False) -> Environment:
        """A new environment, busy for its caller: through its init before it is used."""
        self._starting[module] += 1
        try:
            ours, theirs = self._context.Pipe()
            process = self._context.Process(
                target=_worker,
                args=(theirs, module, self.environment, provisioned),
                name=f"handlers.local {module}",
                daemon=True,
            )
            await asyncio.to_thread(process.start)
            theirs.close()
            environment = Environment(process, ours, provisioned=provisioned)
            try:
                ready = await self._receive(environment)
            except (EOFError, OSError) as error:
                _end(environment)
                raise FunctionError(f"Runtime.ExitError: the {module} environment exited in its init") from error
            log.info("environment started", extra={"function": module, "pid": ready[1]})
        finally:
            self._starting[module] -= 1
        if self._stopped:
            _end(environment)
            raise Throttled(module, ACCOUNT_REASON)
        self.pools[module].append(environment)
        return environment

    @staticmethod
    async def _receive(environment: Environment) -> tuple[str, Any]:
        """The worker's next message, read when its pipe is readable (no thread per invocation)."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[None] = loop.create_future()
        fd = environment.pipe.fileno()

        def readable() -> None:
            if not answered.done():
                answered.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await answered
        finally:
            loop.remove_reader(fd)
        message: tuple[str, Any] = environment.pipe.recv()
        return message

    def _discard(self, module: str, environment: Environment) -> None:
        if environment in self.pools[module]:
            self.pools[module].remove(environment)
        _end(environment, wait=False)

    async def _reclaim_loop(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, max(self.idle_seconds / 4, 0.05)))
            self.reclaim_idle()


def _end(environment: Environment, wait: bool = True) -> None:
    """Ask the worker to stop (it closes its connection as it exits); then make sure it did."""
    with contextlib.suppress(BrokenPipeError, OSError):
        environment.pipe.send(None)
    environment.pipe.close()
    if not wait:
        return
    environment.process.join(timeout=5)
    if environment.process.is_alive():
        environment.process.kill()
        environment.process.join(timeout=5)
