"""The handlers' Lambda zip: reproducible, exactly the right files, built for the Lambda
platform, within Lambda's limits, and importable from a clean interpreter."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from generator.project import Project
from rollout import package
from rollout.cli import main

PROJECT = Project.find()
HANDLER_SOURCES = sorted(
    f"handlers/{p.name}"
    for p in PROJECT.handlers.iterdir()
    if p.suffix in (".py", ".sql") and p.name not in package.LOCAL_ONLY  # the developer's server (aiohttp)
)
HOST = package.Target(
    "x86_64" if package.os_machine() == "x86_64" else "arm64",
    f"{sys.version_info.major}.{sys.version_info.minor}",
)


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> package.Artifact:
    return package.build(package.Target(), tmp_path_factory.mktemp("a"))


def project_copy(tmp_path: Path) -> Project:
    """A project folder of its own: the handlers and the requirements, copied."""
    for folder in ("handlers", "requirements", "templates_out"):
        shutil.copytree(
            PROJECT.root / folder, tmp_path / "project" / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return Project(tmp_path / "project")


def names(artifact: package.Artifact) -> list[str]:
    with zipfile.ZipFile(artifact.path) as archive:
        return archive.namelist()


def test_holds_the_handlers_and_their_dependencies_only(lambda_zip: package.Artifact) -> None:
    files = names(lambda_zip)
    assert sorted(f for f in files if f.startswith("handlers/")) == HANDLER_SOURCES
    assert "handlers/connect.py" in files and "handlers/local.py" not in files
    top = {f.split("/")[0] for f in files}
    assert {"psycopg", "psycopg_binary", "jwt", "cryptography"} <= top
    assert not top & {"tests", "generator", "rollout", "benchmarks", "bin", "boto3", "botocore"}
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def test_binaries_are_for_the_lambda_platform(lambda_zip: package.Artifact) -> None:
    shared = [f for f in names(lambda_zip) if f.endswith(".so")]
    assert shared and all("x86_64" not in f for f in shared)
    assert any(f.endswith(".cpython-314-aarch64-linux-gnu.so") for f in shared)
    with zipfile.ZipFile(lambda_zip.path) as archive:
        elf = archive.read(next(f for f in shared if f.startswith("psycopg_binary/")))
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64


def test_same_sources_give_the_same_bytes(lambda_zip: package.Artifact, tmp_path: Path) -> None:
    again = package.build(package.Target(), tmp_path)
    assert again.path.read_bytes() == lambda_zip.path.read_bytes()
    assert again.s3_key == lambda_zip.s3_key and lambda_zip.sha256[:20] in lambda_zip.s3_key
    with zipfile.ZipFile(again.path) as archive:
        assert {info.date_time for info in archive.infolist()} == {package.FIXED_TIME}


def test_a_changed_handler_changes_the_key(
    lambda_zip: package.Artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_copy(tmp_path)
    (project.handlers / "connect.py").write_text((project.handlers / "connect.py").read_text() + "\n# changed\n")
    changed = package.build(package.Target(), tmp_path / "out", project=project)
    assert changed.s3_key != lambda_zip.s3_key


def test_unchanged_inputs_reuse_the_zip_without_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = package.build(package.Target(), tmp_path)
    calls: list[object] = []
    real = package.install_dependencies
    monkeypatch.setattr(package, "install_dependencies", lambda *a: calls.append(a) or real(*a))
    again = package.build(package.Target(), tmp_path)
    assert again == first and calls == []  # no pip, no zip
    first.path.write_bytes(b"tampered")  # a zip that no longer matches its record is rebuilt
    rebuilt = package.build(package.Target(), tmp_path)
    assert rebuilt.sha256 == first.sha256 and len(calls) == 1
    package.build(package.Target("x86_64"), tmp_path)  # another target is another input
    assert len(calls) == 2


def test_a_changed_handler_is_never_served_from_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = project_copy(tmp_path)
    before = package.build(package.Target(), tmp_path / "out", project=project)
    (project.handlers / "connect.py").write_text((project.handlers / "connect.py").read_text() + "\n# changed\n")
    assert package.build(package.Target(), tmp_path / "out", project=project).sha256 != before.sha256


def test_the_project_folders_handlers_are_packaged_never_an_installed_copy(tmp_path: Path) -> None:
    """An installed command packages the handlers of the project it runs in; without them it refuses."""
    project = project_copy(tmp_path)
    (project.handlers / "marker.py").write_text("EDITED = True\n")
    assert "handlers/marker.py" in names(package.build(package.Target(), tmp_path / "out", project=project))
    shutil.rmtree(project.handlers)
    with pytest.raises(package.PackagingError, match="has no handlers/ package: run from the project folder"):
        package.build(package.Target(), tmp_path / "out", project=project)


def test_refuses_a_package_over_the_limits(tmp_path: Path) -> None:
    with pytest.raises(package.PackagingError, match=r"the zip would be [\d,]+ bytes; Lambda allows 1,000,000"):
        package.build(package.Target(), tmp_path, max_zipped=1_000_000)
    with pytest.raises(package.PackagingError, match="unzipped; Lambda allows 2,000,000"):
        package.build(package.Target(), tmp_path, max_unzipped=2_000_000)
    assert list(tmp_path.iterdir()) == []


def test_refuses_unpinned_dependencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = project_copy(tmp_path)
    lock = project.requirements / "handlers.lock"
    lock.write_text("\n".join(pin for pin in lock.read_text().splitlines() if not pin.startswith("cffi")))
    with pytest.raises(package.PackagingError, match=r"not pinned in handlers\.lock: cffi==2\.1\.1"):
        package.build(package.Target(), tmp_path / "out", project=project)


# What the Lambda Python runtime itself provides besides the standard library.
LAMBDA_RUNTIME_PACKAGES = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "urllib3",
    "six.py",
)


def runtime_only(tmp_path: Path) -> Path:
    """A folder with just the Lambda runtime's own packages, linked from this environment."""
    import boto3

    site = Path(boto3.__file__).parent.parent
    folder = tmp_path / "lambda-runtime"
    folder.mkdir()
    for name in LAMBDA_RUNTIME_PACKAGES:
        (folder / name).symlink_to(site / name)
    return folder


def test_handlers_import_in_a_clean_interpreter_from_the_unpacked_zip(tmp_path: Path) -> None:
    """Built for this machine's platform (the Lambda one cannot load here), then imported with
    no site-packages, only the zip and what the Lambda runtime provides."""
    artifact = package.build(HOST, tmp_path / "zip")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(artifact.path) as archive:
        archive.extractall(unpacked)
    code = (
        "import sys; sys.path[:0] = sys.argv[1:];"
        "import handlers.connect, handlers.disconnect, handlers.default, handlers.cleanup, handlers.auth;"
        "import jwt, psycopg; from handlers.db import schema_sql;"
        "assert 'websocket_connections' in schema_sql(); print(psycopg.pq.__impl__, psycopg.__file__)"
    )
    command = [sys.executable, "-I", "-S", "-c", code, str(unpacked), str(runtime_only(tmp_path))]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    impl, location = result.stdout.split()
    assert impl == "binary" and location.startswith(str(unpacked))


def test_cli_reports_the_key_and_refuses_bad_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["package", "--out", str(tmp_path), "--json"]) == 0
    assert '"s3_key": "handlers/handlers-arm64-py3.14-' in capsys.readouterr().out
    for version in ("three", "3.12", "3.99"):  # only the template's runtime: a zip for another cannot run there
        with pytest.raises(SystemExit) as refused:
            main(["package", "--python-version", version])
        assert refused.value.code == 2 and "choose from '3.14'" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # an --out under a file cannot be created, not even by root
    assert main(["package", "--out", str(blocker / "out")]) == 2
    assert "choose a writable --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main(["package", "--architecture", "sparc"])
    assert raised.value.code == 2
