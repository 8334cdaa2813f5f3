"""Both orchestrators of one plan, in the embedded emulator, in one run: wall time of a fresh and a
no-op rehearsal from a laptop (the local executor) and inside AWS (the state machine invoking the
runner function, its zip run for real by the emulator), with the AWS calls the steps made and, for
the state machine, its state transitions and runner invocations. Ratios against the local engine."""

from __future__ import annotations

import io
import logging
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator import enable_state_machines, running_emulator
from rollout import engine, package, settings, sfn_engine
from rollout.aws import Aws
from rollout.rehearsal import prepare_account
from rollout.report import Reporter


def main() -> None:
    logging.getLogger("moto").setLevel(logging.ERROR)
    env = settings.load("rehearsal")
    artifact = package.build(package.Target())
    rows: dict[tuple[str, str], tuple[float, int, str]] = {}
    with running_emulator() as url:
        for name, run in (("local", engine.run), ("stepfunctions", sfn_engine.run)):
            # Emulators in one process share moto's accounts: start each engine on an empty one.
            urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
            enable_state_machines(url)
            aws = Aws(env.region, endpoint_url=url)
            prepare_account(aws, env)
            options = engine.Options(poll_seconds=0, build_package=lambda *_: artifact)
            for label in ("fresh", "no-op"):
                start = time.perf_counter()
                summary = run(env, aws, Reporter(io.StringIO()), options)
                seconds = time.perf_counter() - start
                calls = sum(sum(stage.calls.values()) for stage in summary.stages if stage.stage != "rollout")
                extra = (
                    (
                        f", {summary.state_transitions} transitions, {sum((summary.state_machine_calls or {}).values())} "
                        "runner invocations"
                    )
                    if summary.state_transitions
                    else ""
                )
                rows[(name, label)] = (seconds, calls, extra)
    print("rollout by orchestrator (embedded emulator, waits of 0 s; handlers package prebuilt)")
    for (name, label), (seconds, calls, extra) in rows.items():
        ratio = seconds / rows[("local", label)][0]
        print(
            f"  {name:13s} {label:6s} {seconds:6.2f} s ({ratio:.1f}x local)  {calls:3d} AWS calls by the plan's steps{extra}"
        )


if __name__ == "__main__":
    main()
