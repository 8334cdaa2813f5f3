"""`python -m rollout`: the release engineer's commands.

Exit codes: 0 success or nothing to do, 1 a stage failed, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rollout import package


def _package(args: argparse.Namespace) -> int:
    try:
        target = package.Target(args.architecture, args.python_version)
    except package.PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        artifact = package.build(target, args.out, args.cache)
    except package.PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    summary = {"path": str(artifact.path), "s3_key": artifact.s3_key, "sha256": artifact.sha256,
               "bytes": artifact.size, "unzipped_bytes": artifact.unzipped_size,
               "architecture": target.architecture, "python": target.python_version}  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"built {artifact.path} ({artifact.size:,} bytes, {artifact.unzipped_size:,} unzipped)"
        )
        print(f"S3 key {artifact.s3_key}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m rollout", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pkg = commands.add_parser("package", help="build the handlers' Lambda zip")
    pkg.add_argument("--architecture", default="arm64", choices=sorted(package.ARCHITECTURES))
    pkg.add_argument(
        "--python-version",
        default=package.Target().python_version,
        help="e.g. 3.14 (the runtime's)",
    )
    pkg.add_argument(
        "--out", type=Path, default=package.REPO / "build" / "lambda", help="output folder"
    )
    pkg.add_argument("--cache", type=Path, default=package.DEFAULT_CACHE, help="wheel cache folder")
    pkg.add_argument("--json", action="store_true", help="print the result as JSON")
    pkg.set_defaults(run=_package)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
