"""Build the handlers' Lambda zip: the `handlers` package plus its runtime dependencies,
resolved for the Lambda platform (manylinux binary wheels for the target architecture and
Python), and nothing else.

Deterministic: files are added in sorted order with a fixed timestamp and mode, so the same
sources and pins give the same bytes. The S3 key carries the content hash: an unchanged build
is never uploaded twice, and a changed one always changes the template parameter.

Content-keyed: a build records the hash of its inputs (handler sources, requirements, lock file,
target). When they are unchanged and the zip is still there with its recorded hash, the zip is
reused: no pip, no deflate.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from generator.model import LAMBDA_RUNTIME
from generator.project import Project

ARCHITECTURES = {"arm64": "aarch64", "x86_64": "x86_64"}
HANDLER_FILES = ("*.py", "*.sql")
LOCAL_ONLY = {
    "local.py",
    "local_environments.py",
    "local_preload.py",
}  # the local WebSocket API: a developer's server, never shipped
# Lambda's limits for a function deployed from a zip (with its layers: none here).
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold
ZIP_LEVEL = 6  # zlib's default: 3x faster than 9 for a zip 0.4% larger
SKIPPED = re.compile(r"(^|/)(__pycache__|bin)(/|$)|\.pyc$")
BUILD_FORMAT = "1"  # bump when the way a zip is made changes: every recorded build is then stale


def os_machine() -> str:
    """This machine's architecture, in `uname -m` terms."""
    return platform.machine()


class PackagingError(RuntimeError):
    """The package cannot be built as asked; the text says why and what to do."""


@dataclass(frozen=True)
class Target:
    architecture: str = "arm64"
    python_version: str = LAMBDA_RUNTIME.removeprefix("python")

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise PackagingError(f"architecture {self.architecture!r}: expected one of {', '.join(ARCHITECTURES)}")
        if not re.fullmatch(r"3\.\d+", self.python_version):
            raise PackagingError(f"python version {self.python_version!r}: expected e.g. 3.14")

    @property
    def platforms(self) -> list[str]:
        machine = ARCHITECTURES[self.architecture]
        return [f"manylinux2014_{machine}", f"manylinux_2_28_{machine}"]


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size: int
    unzipped_size: int
    target: Target

    @property
    def s3_key(self) -> str:
        return f"handlers/{self.path.name}"


def artifact_name(target: Target, sha256: str) -> str:
    """The zip's name carries target and content hash: new content, new S3 key."""
    return f"handlers-{target.architecture}-py{target.python_version}-{sha256[:20]}.zip"


def install_dependencies(target: Target, into: Path, cache: Path, project: Project) -> None:
    """pip, restricted to binary wheels for the Lambda platform; `cache` keeps downloaded wheels."""
    requirements, lock = project.requirements / "handlers.txt", project.requirements / "handlers.lock"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    platform_args = [
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        target.python_version,
    ]
    for tag in target.platforms:
        platform_args += ["--platform", tag]
    cache.mkdir(parents=True, exist_ok=True)
    download = [
        *pip,
        "download",
        "--quiet",
        "--dest",
        str(cache),
        *platform_args,
        "-r",
        str(requirements),
        "-c",
        str(lock),
    ]
    install = [
        *pip,
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(cache),
        "--no-compile",
        "--target",
        str(into),
        *platform_args,
        "-r",
        str(requirements),
        "-c",
        str(lock),
    ]
    if subprocess.run(install, capture_output=True, text=True).returncode != 0:
        _run(download, "downloading the handlers' dependencies")
        _run(install, "installing the handlers' dependencies")
    unpinned = sorted(set(_installed(into)) - set(_locked(lock)))
    if unpinned:
        raise PackagingError(f"dependencies not pinned in {lock.name}: {', '.join(unpinned)}; pin them there")


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise PackagingError(f"{what} failed:\n{result.stderr.strip()[-2000:]}")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(lock: Path) -> list[str]:
    """`name==version` for every pin in the lock file."""
    pins = [line.split("#")[0].strip() for line in lock.read_text().splitlines()]
    return [f"{_normalise(name)}=={version}" for name, _, version in (p.partition("==") for p in pins if "==" in p)]


def _installed(into: Path) -> list[str]:
    """`name==version` for every distribution pip installed into `into`."""
    names = (p.name.removesuffix(".dist-info").rsplit("-", 1) for p in into.glob("*.dist-info"))
    return [f"{_normalise(name)}=={version}" for name, version in names]


def _files(root: Path, patterns: Iterable[str] = ("**/*",)) -> dict[str, Path]:
    found = {}
    for pattern in patterns:
        for path in root.glob(pattern):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and not SKIPPED.search(relative):
                found[relative] = path
    return found


def _handler_files(project: Project) -> dict[str, Path]:
    """The project's handlers (never an installed copy: edited code is the code deployed)."""
    if not (project.handlers / "__init__.py").is_file():
        raise PackagingError(
            f"{project.root} has no handlers/ package: run from the project folder or pass --project-dir"
        )
    return {name: path for name, path in _files(project.handlers, HANDLER_FILES).items() if name not in LOCAL_ONLY}


def zip_bytes(files: dict[str, Path]) -> bytes:
    """A zip of `files` (archive name -> source) that depends only on names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r-- (dlopen needs no x bit)
            info.create_system = 3  # unix, so Lambda honours the mode
            archive.writestr(info, files[name].read_bytes(), compresslevel=ZIP_LEVEL)
    return buffer.getvalue()


def input_key(target: Target, project: Project) -> str:
    """The hash of everything a build reads: handler sources, requirements, lock, target."""
    digest = hashlib.sha256(f"{BUILD_FORMAT}|{target.architecture}|{target.python_version}".encode())
    inputs = {f"handlers/{n}": p for n, p in _handler_files(project).items()}
    inputs |= {
        "requirements.txt": project.requirements / "handlers.txt",
        "handlers.lock": project.requirements / "handlers.lock",
    }
    for name in sorted(inputs):
        digest.update(f"|{name}|".encode() + hashlib.sha256(inputs[name].read_bytes()).digest())
    return digest.hexdigest()


def _recorded(out_dir: Path, key: str, target: Target) -> Artifact | None:
    """The zip an identical earlier build made, if it is still there and unchanged."""
    record = out_dir / f"inputs-{key[:32]}.json"
    try:
        found = json.loads(record.read_text())
        path = out_dir / found["zip"]
        if hashlib.sha256(path.read_bytes()).hexdigest() != found["sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Artifact(path, found["sha256"], int(found["size"]), int(found["unzipped"]), target)


def build(
    target: Target | None = None,
    out_dir: Path | None = None,
    cache: Path | None = None,
    *,
    max_zipped: int = MAX_ZIPPED_BYTES,
    max_unzipped: int = MAX_UNZIPPED_BYTES,
    reuse: bool = True,
    project: Project | None = None,
) -> Artifact:
    """The zip for `target` (default out_dir and cache: the project's build/lambda and .cache/wheels)."""
    project = project or Project.find()
    target = target or Target()
    out_dir, cache = out_dir or project.build / "lambda", cache or project.cache / "wheels"
    key = input_key(target, project)
    if reuse:
        earlier = _recorded(out_dir, key, target)
        if earlier is not None:
            return earlier
    with tempfile.TemporaryDirectory(prefix="cc-package-") as staging_dir:
        staging = Path(staging_dir)
        install_dependencies(target, staging, cache, project)
        files = _files(staging)
        handlers = {f"handlers/{name}": path for name, path in _handler_files(project).items()}
        clash = sorted(set(files) & set(handlers))
        if clash:
            raise PackagingError(f"a dependency ships files inside handlers/: {', '.join(clash)}")
        files.update(handlers)
        unzipped = sum(path.stat().st_size for path in files.values())
        if unzipped > max_unzipped:
            raise PackagingError(
                f"the package would be {unzipped:,} bytes unzipped; Lambda allows {max_unzipped:,}. "
                "Drop a dependency or move it to a layer."
            )
        data = zip_bytes(files)
    if len(data) > max_zipped:
        raise PackagingError(f"the zip would be {len(data):,} bytes; Lambda allows {max_zipped:,}. Drop a dependency.")
    digest = hashlib.sha256(data).hexdigest()
    path = out_dir / artifact_name(target, digest)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    record = {"zip": path.name, "sha256": digest, "size": len(data), "unzipped": unzipped}
    (out_dir / f"inputs-{key[:32]}.json").write_text(json.dumps(record))
    return Artifact(path, digest, len(data), unzipped, target)


# The rollout runner (rollout/runner.py) and what it imports: the step code, pure Python on botocore,
# which the Lambda runtime provides. tests/rollout/test_runner.py runs the zip on its own.
RUNNER_FILES = {
    "rollout": ("__init__.py", "aws.py", "bake.py", "endpoints.py", "live.py", "plan.py", "protection.py", "report.py",
                "pre_traffic.py", "prune_step.py", "release_plan.py", "runner.py", "shift_step.py", "stacks.py",
                "steps.py", "unlock_step.py"),
    "generator": ("__init__.py", "model.py", "names.py", "stages.py"),
    "handlers": ("__init__.py", "events.py"),  # the pre-traffic hook's connection ids
}  # fmt: skip


@dataclass(frozen=True)
class RunnerZip:
    body: bytes
    sha256: str

    @property
    def s3_key(self) -> str:
        return f"runner/rollout-runner-{self.sha256[:20]}.zip"


def runner_zip() -> RunnerZip:
    """The runner's deterministic zip, from the modules this installation runs."""
    here = Path(__file__).resolve().parent.parent
    files = {f"{package}/{name}": here / package / name for package, names in RUNNER_FILES.items() for name in names}
    body = zip_bytes(files)
    return RunnerZip(body, hashlib.sha256(body).hexdigest())
