"""Handler package build time, cold (empty wheel cache: wheels come from the package index),
warm (wheel cache filled, zip rebuilt) and reused (inputs unchanged: the recorded zip), in the
same run, and the zip's size."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout import package


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        cache, out = Path(work) / "wheels", Path(work) / "out"
        start = time.perf_counter()
        cold = package.build(package.Target(), out, cache)
        cold_s = time.perf_counter() - start
        warm_runs = []
        for _ in range(3):
            start = time.perf_counter()
            warm = package.build(package.Target(), out, cache, reuse=False)
            warm_runs.append(time.perf_counter() - start)
        warm_s = sorted(warm_runs)[1]
        reuse_runs = []
        for _ in range(3):
            start = time.perf_counter()
            reused = package.build(package.Target(), out, cache)
            reuse_runs.append(time.perf_counter() - start)
        reuse_s = sorted(reuse_runs)[1]
    assert reused.sha256 == cold.sha256
    assert warm.sha256 == cold.sha256
    print(f"handlers package for {cold.target.architecture} / Python {cold.target.python_version}")
    print(f"  cold build (empty wheel cache): {cold_s:6.2f} s")
    print(f"  warm build (median of 3):       {warm_s:6.2f} s   = {warm_s / cold_s:.2f}x cold")
    print(f"  reused, inputs unchanged:       {reuse_s:6.3f} s   = {reuse_s / warm_s:.3f}x warm")
    print(
        f"  zip {cold.size / 1e6:.2f} MB, unzipped {cold.unzipped_size / 1e6:.2f} MB "
        f"({cold.size / package.MAX_ZIPPED_BYTES:.0%} of Lambda's 50 MB zip limit, "
        f"{cold.unzipped_size / package.MAX_UNZIPPED_BYTES:.0%} of 250 MB unzipped)"
    )


if __name__ == "__main__":
    main()
