"""Step Functions engine figures: state transitions and AWS calls made by the state machine
(its Task states) for a fresh and for a no-op rollout, in the embedded emulator, in one run."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator import running_emulator
from rollout import engine, package, settings, sfn_engine
from rollout.aws import Aws
from rollout.rehearsal import prepare_account
from rollout.report import Reporter


def main() -> None:
    logging.getLogger("moto").setLevel(logging.ERROR)
    env = settings.load("rehearsal")
    artifact = package.build(package.Target())
    rows = []
    with running_emulator() as url:
        aws = Aws(env.region, endpoint_url=url)
        prepare_account(aws, env)
        options = engine.Options(poll_seconds=0, build_package=lambda _t: artifact)
        for label in ("fresh", "no-op"):
            summary = sfn_engine.run(env, aws, Reporter(io.StringIO()), options)
            calls = summary.state_machine_calls or {}
            mutating = sum(n for name, n in calls.items() if not name.startswith(("describe", "get")))
            rows.append((label, summary.state_transitions, sum(calls.values()), mutating))
    print("Step Functions rollout (embedded emulator, waits of 0 s)")
    for label, transitions, total, mutating in rows:
        print(f"  {label:6s} {transitions:4d} state transitions   {total:3d} AWS calls ({mutating} mutating)")
    print(f"  no-op / fresh: {rows[1][1] / rows[0][1]:.2f}x transitions, {rows[1][2] / rows[0][2]:.2f}x calls")


if __name__ == "__main__":
    main()
