"""`python -m rollout`: the release engineer's commands.

  deploy --env NAME     compute stack, then websocket stack, then the endpoint, on AWS
  rehearse              the same rollout against the embedded emulator (no account needed)
  package               build the handlers' Lambda zip
  watch --env NAME      follow what is running for an environment (an execution, or stacks)
  status --env NAME     what is deployed: stacks, artifact, endpoints, alarms (read-only)
  unlock --env NAME     remove the environment's rollout lock, after asking
  destroy --env NAME    delete the environment's stacks in reverse order, after saying what stays
  history --env NAME    the environment's recorded releases, newest first
  rollback --env NAME   deploy a recorded release again (default: the last succeeded one before the current)
  policy --env NAME     the IAM policy a release engineer needs for it (--engine local|stepfunctions)
  emulator [--port N]   serve the embedded emulator on 127.0.0.1 until interrupted

Exit codes: 0 success or nothing to do, 1 a stage failed or AWS refused a call, 2 bad usage,
settings or set-up (nothing changed), 3 declined at a question (nothing executed), 130
interrupted. Under --json a failure is a JSON error object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from generator.project import Project, ProjectNotFound
from rollout import package, settings
from rollout.errors import DECLINED, INTERRUPTED, Failure, explain
from rollout.factory import Factory
from rollout.report import Reporter

REHEARSAL_ENVIRONMENT = "rehearsal"


def _package(args: argparse.Namespace) -> int:
    try:
        target = package.Target(args.architecture, args.python_version)
    except package.PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        artifact = package.build(target, args.out, args.cache, project=args.project)
    except package.PackagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"error: cannot write {error.filename or args.out}: {error.strerror}; choose a writable --out",
            file=sys.stderr,
        )
        return 2
    summary = {
        "path": str(artifact.path),
        "s3_key": artifact.s3_key,
        "sha256": artifact.sha256,
        "bytes": artifact.size,
        "unzipped_bytes": artifact.unzipped_size,
        "architecture": target.architecture,
        "python": target.python_version,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"built {artifact.path} ({artifact.size:,} bytes, {artifact.unzipped_size:,} unzipped)")
        print(f"S3 key {artifact.s3_key}")
    return 0


def _confirm(assume_yes: bool) -> Any:
    def ask(question: str) -> bool:
        """Questions go to stderr, never stdout (which may be `--json > file`); end of input is a no.
        --yes answers each one, printed with its answer: never silently."""
        if assume_yes:
            print(f"{question} [y/N] yes (--yes)", file=sys.stderr, flush=True)
            return True
        print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer:
            print("(no answer: taken as no)", file=sys.stderr)
        return answer.strip().lower() in ("y", "yes")

    return ask


def _rollout(args: argparse.Namespace) -> int:
    report = Reporter()
    rehearsing = args.command == "rehearse"
    environment = REHEARSAL_ENVIRONMENT if rehearsing else args.env
    factory: Factory = args.factory
    options = factory.options(
        dry_run=args.dry_run,
        poll_seconds=args.poll_seconds,
        confirm=_confirm(rehearsing or args.yes),
        bake_seconds=getattr(args, "bake_seconds", None),
        project=args.project,
        allow_replacement=getattr(args, "allow_replacement", False),
        max_minutes=getattr(args, "max_minutes", None),
    )
    try:
        env = settings.load(environment, region=getattr(args, "region", None), project=args.project)
        if not (rehearsing or args.command == "watch" or args.yes or args.dry_run or sys.stdin.isatty()):
            raise settings.SettingsError(
                "not an interactive terminal: pass --yes to execute without questions "
                "(or --dry-run to only show the plan)"
            )
        if args.command == "watch":
            from rollout.watch import watch

            aws = factory.aws(env.region, profile=args.profile, endpoint_url=args.endpoint_url)
            summary = watch(env, aws, report, options)
        elif rehearsing:
            from rollout.rehearsal import rehearse

            policy = None
            if args.least_privilege:
                from emulator import EMULATOR_ACCOUNT
                from rollout.policy import document
                from rollout.steps import Where

                policy = document(env, args.engine, Where("aws", env.region, EMULATOR_ACCOUNT))
            summary = rehearse(env, report, options, args.engine, factory, policy, args.database_url)
        else:
            from rollout import plan_file
            from rollout.deadline import bounded

            aws = factory.aws(env.region, profile=args.profile, endpoint_url=args.endpoint_url)
            kept = plan_file.orchestrator(getattr(args, "plan_out", None), getattr(args, "execute", None), args)
            run = bounded(kept) if kept else factory.orchestrator(args.engine)
            if args.command == "rollback":
                from rollout.rollback import rollback

                summary = rollback(env, aws, report, options, run, args.to)
            else:
                summary = run(env, aws, report, options)
            summary.aws_calls = {"total": aws.counter.total, "mutating": aws.counter.mutating}
    except KeyboardInterrupt:
        return _interrupted(args, environment, report)
    except Exception as error:
        failure = explain(error)
        if failure is None:
            raise
        return _failed(failure, args.json, report, environment)
    report.summary(summary.to_dict(), args.json)
    return 0


def _status(args: argparse.Namespace) -> int:
    """Read-only: 0 healthy, 1 with findings (each says what to do)."""
    from rollout.status import lines, read

    try:
        env = settings.load(args.env, region=args.region, project=args.project)
        found = read(env, args.factory.aws(env.region, profile=args.profile, endpoint_url=args.endpoint_url))
    except Exception as error:
        failure = explain(error)
        if failure is None:
            raise
        return _failed(failure, args.json, Reporter())
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        print("\n".join(lines(found)))
    return 0 if found.healthy else 1


def _unlock(args: argparse.Namespace) -> int:
    """Remove the environment's lock (a run that died holding it), after saying whose it is and asking."""
    from rollout import lock

    try:
        env = settings.load(args.env, region=args.region, project=args.project)
        s3 = args.factory.aws(env.region, profile=args.profile, endpoint_url=args.endpoint_url).client("s3")
        held = lock.read(s3, env.artifacts_bucket, env.name)
        if held is None:
            print(f"environment {env.name} is not locked")
            return 0
        question = f"{env.name} is locked by {held.describe()}. Remove the lock (only if that run is gone)?"
        if not _confirm(args.yes)(question):
            print("declined: the lock stays", file=sys.stderr)
            return DECLINED
        s3.delete_object(Bucket=env.artifacts_bucket, Key=lock.key(env.name))
    except Exception as error:
        failure = explain(error)
        if failure is None:
            raise
        return _failed(failure, False, Reporter())
    print(f"removed the lock of {held.describe()}")
    return 0


def _history(args: argparse.Namespace) -> int:
    """The recorded releases (rollout/releases.py), newest first: read-only."""
    from rollout import releases

    try:
        env = settings.load(args.env, region=args.region, project=args.project)
        s3 = args.factory.aws(env.region, profile=args.profile, endpoint_url=args.endpoint_url).client("s3")
        found = releases.history(s3, env.artifacts_bucket, env.name, args.limit)
    except Exception as error:
        failure = explain(error)
        if failure is None:
            raise
        return _failed(failure, args.json, Reporter())
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
    elif not found:
        print(f"environment {env.name} has no recorded release (s3://{env.artifacts_bucket}/releases/{env.name}/)")
    else:
        print("\n".join(releases.describe_line(r) for r in found))
    return 0


def _policy(args: argparse.Namespace) -> int:
    """The least-privilege policy for the environment and engine, as JSON on stdout."""
    from rollout.policy import document
    from rollout.steps import Where

    try:
        env = settings.load(args.env, region=args.region, project=args.project)
        if args.account:
            where = Where(args.partition, env.region, args.account)
        else:  # GetCallerIdentity needs no permission
            identity = args.factory.aws(env.region, profile=args.profile, endpoint_url=args.endpoint_url).identity()
            where = Where(identity["arn"].split(":")[1], env.region, identity["account"])
    except Exception as error:
        failure = explain(error)
        if failure is None:
            raise
        return _failed(failure, False, Reporter())
    print(json.dumps(document(env, args.engine, where), indent=2))
    return 0


def _account(text: str) -> str:
    if not (len(text) == 12 and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a 12-digit AWS account id")
    return text


def _failed(failure: Failure, as_json: bool, report: Reporter, environment: str = "NAME") -> int:
    if failure.kind == "bake":  # the release is live and its alarms fire: running it again would not help
        report.failure("rollout", failure.message, failure.details)
        print(
            f"The release is live. Roll it back: python -m rollout rollback --env {environment} (the last "
            f"succeeded release; `python -m rollout history --env {environment}` lists them).",
            file=sys.stderr,
        )
    elif failure.kind in ("stage", "package"):
        report.failure("rollout", failure.message, failure.details)
        print(
            "Later stages did not start. Fix the cause and run the same command again: finished stages are skipped.",
            file=sys.stderr,
        )
    else:
        print(f"{'declined' if failure.exit_code == DECLINED else 'error'}: {failure.message}", file=sys.stderr)
    if as_json:
        print(json.dumps(failure.to_dict(), indent=2, sort_keys=True))
    return failure.exit_code


def _interrupted(args: argparse.Namespace, environment: str, report: Reporter) -> int:
    if args.command == "rehearse":
        advice = "the rehearsal ran in this process only; nothing else changed. Run `scripts/main` again."
    elif args.engine == "stepfunctions":
        advice = (
            "stopped following: the state machine's execution keeps running in AWS (its history is in the "
            "Step Functions console). Wait for it to end before running the rollout again."
        )
    else:
        advice = (
            f"stopped watching. CloudFormation carries on with any change already started (it finishes or "
            f"rolls back by itself). Run `python -m rollout deploy --env {environment}` again to resume: "
            "finished stages are skipped."
        )
    print(f"\ninterrupted: {advice}", file=sys.stderr)
    if args.json:
        print(json.dumps(Failure(INTERRUPTED, "interrupted", advice).to_dict(), indent=2, sort_keys=True))
    return INTERRUPTED


def _emulator(args: argparse.Namespace) -> int:
    """Serve the rehearsal's emulator (moto plus what this project teaches it) for other tools."""
    from emulator import EMULATOR_ACCOUNT, EMULATOR_REGION, running_emulator, websocket_url

    # Stopped by Ctrl-C, and by SIGTERM (docker stop, systemd, CI); also when started in the
    # background of a shell, which starts a program with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.port:  # moto's server thread would only print a bind failure: check first
            socket.create_server(("127.0.0.1", args.port)).close()
        with running_emulator(args.port) as url:
            print(
                f"emulator listening on {url} (account {EMULATOR_ACCOUNT}, e.g. region {EMULATOR_REGION}); "
                f"any credentials work. Ctrl-C stops it.",
                flush=True,
            )
            print(f"  AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x", flush=True)
            print(f"  deployed WebSocket APIs answer at {websocket_url('<apiId>', '<stage>')}", flush=True)
            while True:
                time.sleep(3600)
    except OSError as error:
        print(
            f"error: cannot listen on 127.0.0.1:{args.port}: {error.strerror}; pick another --port",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("emulator stopped", file=sys.stderr)
        return 0


def _seconds(text: str) -> float:
    value = float(text) if text.replace(".", "", 1).isdigit() else -1.0
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds between 0 and 60")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected minutes between 1 and 600")
    return value


def _bake_seconds(text: str) -> int:
    try:
        return settings.bake_seconds(text, "--bake-seconds")
    except settings.SettingsError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--bake-seconds: ")) from None


def _limit(text: str) -> int:
    if not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number above 0")
    return int(text)


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an http(s) URL, e.g. http://127.0.0.1:4566")
    return text


def parser(project: Project) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m rollout",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    root.add_argument("--project-dir", type=Path, help="the project folder (default: found from here upwards)")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def output(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--json", action="store_true", help="print the summary (or the error) as JSON")
        sub.add_argument("--poll-seconds", type=_seconds, default=2.0, help=argparse.SUPPRESS)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--dry-run", action="store_true", help="show every stage's change set; change nothing")
        output(sub)
        sub.add_argument(
            "--engine",
            choices=("local", "stepfunctions"),
            default="local",
            help="local: run the plan from here; stepfunctions: run it inside AWS",
        )
        sub.add_argument(
            "--bake-seconds",
            type=_bake_seconds,
            help="after the endpoint stage, watch the stacks' alarms this long; any in ALARM fails the rollout "
            "(0 skips; default: the environment's bake_seconds)",
        )
        sub.add_argument(
            "--allow-replacement",
            action="store_true",
            help="let the plan replace resources (a new wss:// URL, log groups re-created): refused without it",
        )

    def bound(sub: argparse.ArgumentParser) -> None:
        from rollout.deadline import MAX_MINUTES

        sub.add_argument(
            "--max-minutes",
            type=_minutes,
            help=f"stop the run after this long, saying what still runs (AWS carries on; default {MAX_MINUTES}, "
            "plus the bake and release.monitoring_minutes after each stack update)",
        )

    def aws_target(sub: argparse.ArgumentParser) -> None:
        """Which environment, in which account: what `deploy` and `watch` both need."""
        sub.add_argument("--env", required=True, help=f"environment: one of {', '.join(settings.available(project))}")
        sub.add_argument("--region", help="override the environment's region")
        sub.add_argument("--profile", help="AWS profile (default: the standard credential chain)")
        sub.add_argument("--endpoint-url", type=_url, help="any AWS-compatible endpoint (e.g. a local emulator)")

    deploy = commands.add_parser("deploy", help="roll out an environment to AWS")
    aws_target(deploy)
    deploy.add_argument("--yes", action="store_true", help="execute without asking (needed when not interactive)")
    common(deploy)
    bound(deploy)
    kept = deploy.add_mutually_exclusive_group()
    kept.add_argument(
        "--plan-out", type=Path, metavar="FILE", help="create and keep the change sets, write the plan to FILE"
    )
    kept.add_argument(
        "--execute", type=Path, metavar="FILE", help="run the change sets of a --plan-out FILE, if nothing changed"
    )
    deploy.set_defaults(run=_rollout)

    follow = commands.add_parser("watch", help="follow what is running for an environment")
    aws_target(follow)
    output(follow)
    follow.set_defaults(run=_rollout, dry_run=False, yes=True, engine="local")

    state = commands.add_parser("status", help="what is deployed for an environment (read-only)")
    aws_target(state)
    state.add_argument("--json", action="store_true", help="print the status as JSON")
    state.set_defaults(run=_status)

    free = commands.add_parser("unlock", help="remove an environment's rollout lock (asks first)")
    aws_target(free)
    free.add_argument("--yes", action="store_true", help="remove it without asking")
    free.set_defaults(run=_unlock)
    from rollout.destroy import add_command

    add_command(commands, aws_target, _confirm, _failed)
    past = commands.add_parser("history", help="an environment's recorded releases, newest first (read-only)")
    aws_target(past)
    past.add_argument("--json", action="store_true", help="print the release records as JSON")
    past.add_argument("--limit", type=_limit, help="only the newest N releases")
    past.set_defaults(run=_history)

    back = commands.add_parser("rollback", help="deploy a recorded release again, through the same steps")
    aws_target(back)
    back.add_argument("--to", metavar="RELEASE", help="the release id (default: the last succeeded before the current)")
    back.add_argument("--yes", action="store_true", help="execute without asking (needed when not interactive)")
    common(back)
    bound(back)
    back.set_defaults(run=_rollout)

    policy = commands.add_parser("policy", help="the IAM policy a release engineer needs for an environment")
    aws_target(policy)
    policy.add_argument("--engine", choices=("local", "stepfunctions"), default="local", help="the engine they run")
    policy.add_argument("--account", type=_account, help="the account id (default: the caller's, from STS)")
    policy.add_argument("--partition", default="aws", help="with --account: the partition (default aws)")
    policy.set_defaults(run=_policy)

    rehearse = commands.add_parser("rehearse", help="the full rollout against the embedded emulator")
    common(rehearse)
    rehearse.add_argument(
        "--least-privilege",
        action="store_true",
        help="run as a user holding exactly `policy`'s policy, the emulator enforcing IAM (local engine)",
    )
    rehearse.add_argument(
        "--database-url",
        default=os.environ.get("CC_REHEARSAL_DATABASE_URL"),
        help="a PostgreSQL server (postgresql://user@host:5432/db, default $CC_REHEARSAL_DATABASE_URL) on which "
        "the rehearsal makes a throwaway database to prove a session through the deployed stage",
    )
    rehearse.set_defaults(run=_rollout)

    pkg = commands.add_parser("package", help="build the handlers' Lambda zip")
    pkg.add_argument("--architecture", default="arm64", choices=sorted(package.ARCHITECTURES))
    runtime = package.Target().python_version
    pkg.add_argument(
        "--python-version",
        default=runtime,
        choices=[runtime],  # the compute template's runtime: compiled dependencies are per Python version
        help=f"the compute template's runtime, {runtime}",
    )
    pkg.add_argument("--out", type=Path, help="output folder (default: the project's build/lambda)")
    pkg.add_argument("--cache", type=Path, help="wheel cache folder (default: the project's .cache/wheels)")
    pkg.add_argument("--json", action="store_true", help="print the result as JSON")
    pkg.set_defaults(run=_package)

    emulator = commands.add_parser("emulator", help="serve the embedded emulator for other tools")
    emulator.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    emulator.set_defaults(run=_emulator)
    return root


def main(argv: list[str] | None = None, factory: Factory | None = None) -> int:
    """The one place the project folder is found and the factory made; every command gets both from here."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--project-dir", type=Path)
    known, rest = where.parse_known_args(argv)
    try:
        project = Project.find(known.project_dir)
    except ProjectNotFound as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = parser(project).parse_args(rest)
    args.project = project
    args.factory = factory or Factory()
    return int(args.run(args))
