"""`python -m generator`: write templates_out/, or check it is up to date.

Exit codes: 0 done (or up to date), 1 templates_out/ is stale, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generator.build import apply_defaults, build_all, render_all
from generator.parameters import InvalidSetting
from generator.project import Project, ProjectNotFound
from generator.render import FORMATS, compare, write_all


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m generator",
        description="Generate the CareConnect WebSocket CloudFormation templates.",
    )
    parser.add_argument("--project-dir", type=Path, help="the project folder (default: found from here upwards)")
    parser.add_argument("--out", type=Path, help="output folder (default: the project's templates_out/)")
    parser.add_argument("--format", choices=FORMATS, default="yaml", help="template format (default yaml)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming every file in --out that is stale, missing or unexpected",
    )
    parser.add_argument(
        "--set",
        dest="defaults",
        action="append",
        type=_setting,
        default=[],
        metavar="NAME=VALUE",
        help="override a parameter's default (checked against its constraints); repeatable",
    )
    parser.add_argument("--only", action="append", metavar="TEMPLATE", help="generate only this template")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        committed = Project.find(args.project_dir).templates_out
    except ProjectNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out = args.out or committed
    if not args.check and args.out.resolve() == committed and (args.format != "yaml" or args.defaults):
        print(
            "error: templates_out/ holds only the committed YAML with the templates' own defaults; "
            "write JSON or other defaults elsewhere with --out (e.g. --out build/json). Nothing was written.",
            file=sys.stderr,
        )
        return 2
    try:
        templates = build_all(args.only)
        apply_defaults(templates, dict(args.defaults))
    except InvalidSetting as error:
        print(f"error: {error}. Nothing was written.", file=sys.stderr)
        return 2
    texts = render_all(templates, args.format)
    if args.check:
        result = compare(texts, args.out, args.format)
        if args.only:
            result = type(result)(result.missing, result.stale, [])
        if result.clean:
            print(f"{args.out}: {len(texts)} template(s) up to date")
            return 0
        print(result.explain(args.out), file=sys.stderr)
        print("Run `python -m generator` and commit templates_out/.", file=sys.stderr)
        return 1
    for path in write_all(texts, args.out):
        print(f"wrote {path}")
    return 0
