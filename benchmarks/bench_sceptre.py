"""The rollout against a peer doing the same work, as a user meets both: whole processes, one
emulator (`python -m rollout emulator`), the project's own two templates.

Peer: Sceptre (installed here in its own virtualenv, .cache/bench-sceptre), launching the
compute and websocket stacks as a stack group (templates by TemplateURL from the bucket, as
ours), the websocket stack's inputs wired from the compute stack's outputs (`!stack_output`). Ours: `python -m rollout deploy --env rehearsal
--endpoint-url ... --yes`, which also runs the endpoint stage (Sceptre has no equivalent).
For each of 3 rounds the emulator is reset: a fresh rollout, then a no-op re-run, for each
tool; figures are medians and ratios (Sceptre's time / ours).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rollout import package  # noqa: E402
from tests.ports import free_port  # noqa: E402

SCEPTRE_VERSION = "4.7.0"
SCEPTRE_VENV = REPO / ".cache" / "bench-sceptre"
REGION = "eu-west-1"
BUCKET = "cc-websocket-rehearsal-artifacts"  # environments/rehearsal.yaml's
ROUNDS = 3
DATABASE = {
    "DatabaseAuth": "iam",
    "DatabaseHost": "db.rehearsal.invalid",
    "DatabaseName": "careconnect",
    "DatabaseUser": "careconnect_ws",
    "DatabaseResourceId": "db-REHEARSAL",
}


def sceptre() -> Path:
    """Sceptre in a virtualenv of its own (its pins must not touch the project's)."""
    executable = SCEPTRE_VENV / "bin" / "sceptre"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SCEPTRE_VENV)], check=True)
        subprocess.run(
            [
                str(SCEPTRE_VENV / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"sceptre=={SCEPTRE_VERSION}",
            ],
            check=True,
        )
    return executable


def sceptre_project(root: Path, code_key: str) -> Path:
    """A Sceptre project deploying templates_out/ as stack group `bench`."""
    (root / "templates").mkdir(parents=True)
    for stem in ("compute", "websocket"):
        shutil.copy(REPO / "templates_out" / f"{stem}.yaml", root / "templates" / f"{stem}.yaml")
    group = root / "config" / "bench"
    group.mkdir(parents=True)
    # compute.yaml is over CloudFormation's 51,200-byte TemplateBody limit: Sceptre uploads the
    # templates to the bucket and passes a TemplateURL, as the rollout does.
    (root / "config" / "config.yaml").write_text(
        f"project_code: sc\nregion: {REGION}\ntemplate_bucket_name: {BUCKET}\ntemplate_key_prefix: sceptre\n"
    )
    compute = {"NamePrefix": "sc", "CodeS3Bucket": BUCKET, "CodeS3Key": code_key, **DATABASE}
    (group / "compute.yaml").write_text(
        "template:\n  type: file\n  path: compute.yaml\nstack_name: sc-websocket-compute\nparameters:\n"
        + "".join(f"  {k}: {v}\n" for k, v in compute.items())
    )
    wired = {
        "ConnectFunctionArn": "ConnectFunctionArn",
        "DisconnectFunctionArn": "DisconnectFunctionArn",
        "DefaultFunctionArn": "DefaultFunctionArn",
        "HandlersRoleName": "HandlersRoleName",
    }
    (group / "websocket.yaml").write_text(
        "template:\n  type: file\n  path: websocket.yaml\nstack_name: sc-websocket-api\n"
        "dependencies:\n  - bench/compute.yaml\nparameters:\n  NamePrefix: sc\n  StageName: prod\n"
        + "".join(f"  {k}: !stack_output_external sc-websocket-compute::{v}\n" for k, v in wired.items())
    )
    return root


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{command[0]} failed ({result.returncode}):\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        )
    return took


def main() -> None:
    tool = sceptre()
    artifact = package.build(package.Target())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "PYTHONWARNINGS": "ignore",
    }
    emulator = subprocess.Popen(
        [sys.executable, "-m", "rollout", "emulator", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert emulator.stdout is not None and url in emulator.stdout.readline()
    ours = [
        sys.executable,
        "-m",
        "rollout",
        "deploy",
        "--env",
        "rehearsal",
        "--endpoint-url",
        url,
        "--yes",
    ]
    figures: dict[str, list[float]] = {
        "ours fresh": [],
        "ours no-op": [],
        "sceptre fresh": [],
        "sceptre no-op": [],
    }
    try:
        import boto3

        with tempfile.TemporaryDirectory(prefix="bench-sceptre-") as tmp:
            project = sceptre_project(Path(tmp), artifact.s3_key)
            launch = [str(tool), "--no-colour", "launch", "-y", "bench"]
            for _ in range(ROUNDS):
                urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
                s3 = boto3.client(
                    "s3", endpoint_url=url, region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench"
                )
                s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
                s3.put_object(Bucket=BUCKET, Key=artifact.s3_key, Body=artifact.path.read_bytes())
                figures["ours fresh"].append(timed(ours, env, REPO))
                figures["ours no-op"].append(timed(ours, env, REPO))
                figures["sceptre fresh"].append(timed(launch, env, project))
                figures["sceptre no-op"].append(timed(launch, env, project))
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.wait(timeout=30)
    median = {name: statistics.median(values) for name, values in figures.items()}
    print(f"rollout vs Sceptre {SCEPTRE_VERSION}, whole processes on one emulator (median of {ROUNDS})")
    for kind in ("fresh", "no-op"):
        print(
            f"  {kind:6s} ours {median[f'ours {kind}']:5.2f} s   Sceptre {median[f'sceptre {kind}']:5.2f} s   "
            f"Sceptre / ours = {median[f'sceptre {kind}'] / median[f'ours {kind}']:4.1f}x"
        )


if __name__ == "__main__":
    main()
