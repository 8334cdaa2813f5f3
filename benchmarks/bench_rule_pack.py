"""The WebSocket rule pack against stock cfn-lint, as a team meets both: whole `cfn-lint`
processes on the documented CDK and SAM WebSocket examples (tests/lint/fixtures) and on this
project's templates_out/. Prints what each run reports (pack rules vs. stock rules) and the wall
time of each, median of 3, as a ratio to stock cfn-lint on the same files.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK = REPO / "cfnlint_websocket"
FIXTURES = REPO / "tests" / "lint" / "fixtures"
BESIDE = Path(sys.executable).with_name("cfn-lint")  # the project's cfn-lint, not whichever is first on PATH
CFN_LINT = str(BESIDE) if BESIDE.exists() else shutil.which("cfn-lint") or "cfn-lint"
ROUNDS = 3
SETS = {
    "CDK example": [FIXTURES / "cdk-websocket-api-integ.template.json"],
    "SAM example": [FIXTURES / "sam-simple-websockets-chat-app.yaml"],
    "templates_out/": sorted((REPO / "templates_out").glob("*.yaml")),
}


def run(files: list[Path], pack: bool) -> tuple[float, Counter[str]]:
    """One whole cfn-lint process from an empty directory (no .cfnlintrc): seconds, rule ids found."""
    args = [CFN_LINT, *(["--append-rules", str(PACK), "--"] if pack else []), *map(str, files)]
    with tempfile.TemporaryDirectory() as empty:
        started = time.perf_counter()
        result = subprocess.run(args, cwd=empty, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    found = Counter(line.split()[0] for line in result.stdout.splitlines() if line[:1] in ("E", "W", "I"))
    return elapsed, found


def main() -> None:
    print(f"cfn-lint with the WebSocket rule pack vs. stock cfn-lint (whole processes, median of {ROUNDS})")
    for name, files in SETS.items():
        stock_times, pack_times = [], []
        for _ in range(ROUNDS):
            stock_elapsed, stock_found = run(files, pack=False)
            pack_elapsed, pack_found = run(files, pack=True)
            stock_times.append(stock_elapsed)
            pack_times.append(pack_elapsed)
        ours = {rule: n for rule, n in pack_found.items() if rule[1:3] == "91"}
        stock_total = sum(stock_found.values())
        print(
            f"  {name:15} stock: {stock_total} findings {dict(sorted(stock_found.items()))}; "
            f"pack adds {sum(ours.values())}: {dict(sorted(ours.items()))}; "
            f"time stock {statistics.median(stock_times):.2f} s, with pack {statistics.median(pack_times):.2f} s "
            f"({statistics.median(pack_times) / statistics.median(stock_times):.2f}x)"
        )


if __name__ == "__main__":
    main()
