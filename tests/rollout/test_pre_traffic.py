"""The pre-traffic hook (rollout/pre_traffic.py) drives one session against a published version of
the real route handlers, run by the emulator's Lambda runtime on a real PostgreSQL: a healthy
version passes and leaves no row; a broken one fails naming the route and the version, and
leaves no row either; the version named is the one that runs."""

from __future__ import annotations

import io
import json
import zipfile
from fnmatch import fnmatchcase
from typing import Any

import pytest

from handlers.db import Database
from rollout import package
from rollout.pre_traffic import EMAIL, PreTrafficFailed, calls, dialog_frame, drive_session, session_event
from tests.emulator.lambda_zips import LAMBDA_TRUST, REGION, client
from tests.rollout.conftest import HOTFIX

pytestmark = pytest.mark.postgres

ROUTES = {"Connect": "handlers.connect", "Default": "handlers.default", "Disconnect": "handlers.disconnect"}
NAMES = {logical: f"careconnect-test-{logical.lower()}" for logical in ROUTES}
API_ID = "pt1a2b3c4d"
DOMAIN = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
# Its error names a database URL with a password, as a careless exception might: the hook masks it.
BROKEN_DEFAULT = (
    "def handler(event, context):\n"
    "    raise RuntimeError('the new $default is broken: postgresql://app:pw-s3cret@db.internal/careconnect')\n"
)


def with_file(artifact: bytes, name: str, text: str) -> bytes:
    """The handlers' zip with one file replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(artifact)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            if item.filename != name:
                target.writestr(item, source.read(item))
        target.writestr(name, text)
    return out.getvalue()


@pytest.fixture
def code(built_artifact: package.Artifact) -> bytes:
    return built_artifact.path.read_bytes()


@pytest.fixture
def lam(emulator: str) -> Any:
    return client(emulator, "lambda")


def create_route_functions(emulator: str, code: bytes, database_url: str) -> list[str]:
    """The three route functions on the handlers' zip; their ARNs."""
    role = client(emulator, "iam").create_role(RoleName="pre-traffic-test", AssumeRolePolicyDocument=LAMBDA_TRUST)[
        "Role"
    ]["Arn"]
    return [
        client(emulator, "lambda").create_function(
            FunctionName=NAMES[logical], Runtime="python3.12", Role=role, Handler=f"{module}.handler",
            Code={"ZipFile": code}, Timeout=20, Environment={"Variables": {"DATABASE_URL": database_url}},
        )["FunctionArn"]
        for logical, module in ROUTES.items()
    ]  # fmt: skip


def publish_all(lam: Any) -> str:
    versions = {lam.publish_version(FunctionName=name)["Version"] for name in NAMES.values()}
    assert len(versions) == 1, versions  # the three functions' versions stay in step
    return versions.pop()


def break_default(lam: Any, code: bytes) -> None:
    """$LATEST of the $default function becomes code that raises."""
    lam.update_function_code(
        FunctionName=NAMES["Default"], ZipFile=with_file(code, "handlers/default.py", BROKEN_DEFAULT)
    )


def publish_release(lam: Any) -> str:
    """A release publishes all three functions (the others with a changed configuration)."""
    for name in (NAMES["Connect"], NAMES["Disconnect"]):
        lam.update_function_configuration(FunctionName=name, Description="release 2")
    return publish_all(lam)


def hook_rows(db: Database) -> list[Any]:
    return db.run(
        "SELECT connection_id, is_active FROM websocket_connections WHERE connection_id LIKE %s", ("pre-traffic-%",)
    )


def drive(lam: Any, qualifier: str, **options: Any) -> Any:
    return drive_session(lam, NAMES, qualifier, domain_name=DOMAIN, stage="prod", **options)


def test_a_healthy_version_passes_and_leaves_no_row(
    emulator: str,
    lam: Any,
    code: bytes,
    handlers_url: str,
    owner_db: Database,
) -> None:
    arns = create_route_functions(emulator, code, handlers_url)
    version = publish_all(lam)
    made: list[tuple[str, str]] = []  # every call the hook makes: the action, and the ARN IAM authorizes it on
    by_name = {arn.rsplit(":", 1)[-1]: arn for arn in arns}
    lam.meta.events.register(
        "before-parameter-build.lambda",
        lambda params, model, **_: made.append(
            (f"lambda:{model.name}Function", f"{by_name[params['FunctionName']]}:{params.get('Qualifier', '')}")
        ),
    )
    report = drive(lam, version)
    declared = calls(arns, version)
    assert made == [("lambda:InvokeFunction", f"{by_name[NAMES[logical]]}:{version}") for logical in ROUTES]
    assert all(any(c.action == a and fnmatchcase(arn, c.resource) for c in declared) for a, arn in made)
    assert [(a.route, a.status_code) for a in report.answers] == [("$connect", 200), ("$default", 200),
                                                                  ("$disconnect", 200)]  # fmt: skip
    assert report.connection_id.startswith("pre-traffic-")
    assert hook_rows(owner_db) == []  # $disconnect deleted it: not even an inactive row


def test_a_version_whose_default_raises_fails_naming_route_and_version_and_leaves_no_row(
    emulator: str,
    lam: Any,
    code: bytes,
    handlers_url: str,
    owner_db: Database,
) -> None:
    create_route_functions(emulator, code, handlers_url)
    publish_all(lam)  # version 1: good
    break_default(lam, code)
    version = publish_release(lam)
    with pytest.raises(PreTrafficFailed) as failed:
        drive(lam, version)
    text = str(failed.value)
    assert f"$default on {NAMES['Default']} version {version}" in text
    assert "Unhandled" in text and "RuntimeError: the new $default is broken" in text
    assert "postgresql://app:****@db.internal" in text and "pw-s3cret" not in text
    assert hook_rows(owner_db) == []  # $connect's row was removed by the $disconnect sent after the failure


def test_a_version_with_a_wrong_database_url_fails_at_connect_without_showing_the_password(
    emulator: str,
    lam: Any,
    code: bytes,
    handlers_url: str,
    owner_db: Database,
) -> None:
    wrong = "postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=2"
    create_route_functions(emulator, code, wrong)
    version = publish_all(lam)
    with pytest.raises(PreTrafficFailed) as failed:
        drive(lam, version)
    text = str(failed.value)
    assert f"$connect on {NAMES['Connect']} version {version}" in text
    assert "statusCode 500 'database unavailable'" in text
    assert "s3cret-pw" not in text
    assert hook_rows(owner_db) == []


def test_a_missing_version_fails_naming_it(emulator: str, lam: Any) -> None:
    role = client(emulator, "iam").create_role(RoleName="r", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    for name in NAMES.values():
        lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler", Code={"ZipFile": HOTFIX}
        )  # fmt: skip  (the functions exist, version 7 does not)
    with pytest.raises(PreTrafficFailed, match=rf"\$connect on {NAMES['Connect']} version 7: Invoke failed: "):
        drive(lam, "7")


def test_the_hook_runs_the_named_version_not_latest(
    emulator: str,
    lam: Any,
    code: bytes,
    handlers_url: str,
    owner_db: Database,
) -> None:
    create_route_functions(emulator, code, handlers_url)
    good = publish_all(lam)
    break_default(lam, code)
    drive(lam, good)  # $LATEST is broken; version 1 is not
    assert hook_rows(owner_db) == []
    broken = publish_release(lam)
    with pytest.raises(PreTrafficFailed, match=rf"\$default on {NAMES['Default']} version {broken}"):
        drive(lam, broken)


def test_the_declared_calls_are_invokes_of_the_qualified_functions() -> None:
    arns = [f"arn:aws:lambda:{REGION}:123456789012:function:{name}" for name in NAMES.values()]
    declared = calls(arns, "3")
    assert [(c.action, c.resource) for c in declared] == [("lambda:InvokeFunction", f"{arn}:3") for arn in arns]
    assert {c.resource for c in calls(arns)} == {f"{arn}:*" for arn in arns}


def test_the_events_have_the_shape_the_handlers_tests_use() -> None:
    """tests/handlers/events.py is API Gateway's documented shape; the hook sends the same keys."""
    from tests.handlers import events

    where = {"domain_name": DOMAIN, "stage": "prod", "connected_at": 1795633200000}
    documented = {"Connect": events.connect_event("c"), "Default": events.message_event("c", "{}"),
                  "Disconnect": events.disconnect_event("c")}  # fmt: skip
    for logical, expected in documented.items():
        sent = session_event(logical, "pre-traffic-1", "r-1", body="{}", **where)
        assert set(sent) <= set(expected) and set(sent["requestContext"]) == set(expected["requestContext"])
        assert set(sent["requestContext"]["identity"]) == set(expected["requestContext"]["identity"])
        assert sent["requestContext"]["apiId"] == API_ID and sent["requestContext"]["domainName"] == DOMAIN
    assert json.loads(dialog_frame()) == {"type": "subscribe-email-verification", "email": EMAIL}
