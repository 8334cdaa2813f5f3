"""Time to generate every template in one process, against one cfn-lint run over templates_out/.

Both are measured in the same run; the ratio is the figure to compare across machines.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 20


def timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    cold = timed(
        lambda: subprocess.run(
            [
                sys.executable,
                "-c",
                "from generator.build import build_all, render_all; render_all(build_all(), 'yaml')",
            ],
            cwd=REPO,
            check=True,
        )
    )
    from generator.build import build_all, render_all

    warm = statistics.median(timed(lambda: render_all(build_all(), "yaml")) for _ in range(ROUNDS))
    lint = timed(lambda: subprocess.run([str(Path(sys.executable).parent / "cfn-lint")], cwd=REPO, check=True))
    print("generate + render all templates")
    print(f"  in-process (median of {ROUNDS}): {warm * 1000:8.1f} ms   target < 1000 ms")
    print(f"  fresh interpreter incl. imports: {cold * 1000:8.1f} ms")
    print(f"one cfn-lint run over templates_out/: {lint * 1000:8.1f} ms")
    print(f"ratio in-process generate / cfn-lint: {warm / lint:.3f}")


if __name__ == "__main__":
    main()
