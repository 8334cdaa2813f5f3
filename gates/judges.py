"""Judges nobody here wrote, on templates_out/: cfripper (Skyscanner's security rules), AWS
Control Tower's proactive-control Guard rules run by cfn-guard (both bundled in npm
`@cdklabs/cdk-validator-cfnguard`), and cfn-lint-serverless (the serverless rules for cfn-lint).

Each finding is fixed in the generator or excused in `judge_exceptions.yaml`, one entry per
judge, rule, template and resources, each with the reason it is inherent to the design; an
entry that excuses nothing fails, so the file cannot rot. The judges run offline, pinned:
`.venv-judges` (gates/judges-requirements.txt) and gates/node (package-lock.json), both
installed by scripts/test. The three run side by side (about 15 s, cfn-guard's 700
rule-and-template evaluations being most of it).

Run: `python -m gates.judges` (exit 1 naming judge, rule, template and resource per finding).
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates_out"
EXCEPTIONS_FILE = Path(__file__).with_name("judge_exceptions.yaml")
JUDGES_VENV = ROOT / ".venv-judges"
GUARD_PACKAGE = Path(__file__).with_name("node") / "node_modules" / "@cdklabs" / "cdk-validator-cfnguard"
JUDGES = ("cfripper", "control-tower", "cfn-lint-serverless")


@dataclass(frozen=True, order=True)
class Finding:
    judge: str
    rule: str
    template: str  # the stem: compute, websocket, rollout
    resource: str  # logical id ("" for a template-level finding)
    message: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.judge, self.rule, self.template, self.resource)

    def explain(self) -> str:
        return f"{self.judge} {self.rule}: {self.template} {self.resource or '(template)'}: {self.message}"


@dataclass(frozen=True)
class Excuse:
    judge: str
    rule: str
    template: str
    resources: frozenset[str]
    reason: str

    def finding_keys(self) -> set[tuple[str, str, str, str]]:
        return {(self.judge, self.rule, self.template, r) for r in self.resources}


def load_exceptions(path: Path = EXCEPTIONS_FILE) -> list[Excuse]:
    found = []
    for entry in yaml.safe_load(path.read_text()) or []:
        if not str(entry.get("reason", "")).strip():
            raise ValueError(f"{path}: every exception needs a reason: {entry}")
        if entry.get("judge") not in JUDGES:
            raise ValueError(f"{path}: judge must be one of {JUDGES}: {entry}")
        resources = entry.get("resources") or [""]
        found.append(Excuse(entry["judge"], entry["rule"], entry["template"], frozenset(resources), entry["reason"]))
    return found


# --- the judges: each started as a process, read when all have run ----------------------------


def _stem(path: str) -> str:
    return Path(path).name.removesuffix(".yaml")


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise RuntimeError(f"{path} is missing: {what} (scripts/test installs it)")


def start_cfripper(templates: Path, out: Path) -> subprocess.Popen[str]:
    """cfripper resolves intrinsics (--resolve): unresolved, it crashes on a conditional policy."""
    _require(JUDGES_VENV / "bin" / "cfripper", "the judges' virtualenv")
    names = sorted(p.name for p in templates.glob("*.yaml"))
    command = [
        str(JUDGES_VENV / "bin" / "cfripper"),
        *names,
        "--resolve",
        "--format",
        "json",
        "--logging",
        "ERROR",
        "--aws-account-id",
        "123456789012",
        "--output-folder",
        str(out),
    ]
    return subprocess.Popen(command, cwd=templates, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_cfripper(out: Path) -> list[Finding]:
    found = []
    for result in sorted(out.glob("*.cfripper.results.json")):
        template = result.name.removesuffix(".yaml.cfripper.results.json")
        for failure in json.loads(result.read_text())["failures"]:
            for resource in failure.get("resource_ids") or [""]:
                found.append(Finding("cfripper", failure["rule"], template, resource, failure["reason"]))
    return found


def start_guard(templates: Path) -> subprocess.Popen[str]:
    binary = GUARD_PACKAGE / "bin" / "ubuntu" / ("aarch64" if _machine() == "aarch64" else "x86_64") / "cfn-guard"
    _require(binary, "npm @cdklabs/cdk-validator-cfnguard in gates/node")
    binary.chmod(0o755)  # npm does not keep the bundled binary's mode
    rules = GUARD_PACKAGE / "rules" / "control-tower" / "cfn-guard"
    command = [str(binary), "validate", "-r", str(rules), "-d", str(templates), "-o", "json", "-S", "none"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _machine() -> str:
    return platform.machine()


CONTROL = re.compile(r"\[(CT\.[A-Z0-9]+\.PR\.[0-9]+)\]")
RESOURCE = re.compile(r"/Resources/([A-Za-z0-9]+)")


def read_guard(stdout: str) -> list[Finding]:
    """cfn-guard writes one JSON document per rule file and template, back to back."""
    decoder, at, found = json.JSONDecoder(), 0, []
    while at < len(stdout):
        if stdout[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(stdout, at)
        if document["status"] != "FAIL":
            continue
        for item in document["not_compliant"]:
            text = json.dumps(item)
            control = CONTROL.search(text)
            rule = control.group(1).lower().replace("ct.", "ct-").replace(".pr.", "-pr-") if control else "unknown"
            message = item["Rule"]["name"]
            for resource in sorted(set(RESOURCE.findall(text))) or [""]:
                found.append(Finding("control-tower", rule, _stem(document["name"]), resource, message))
    return found


def start_serverless(templates: Path) -> subprocess.Popen[str]:
    """cfn-lint with the serverless rules appended, run outside the repository (whose .cfnlintrc
    and rule pack the project's own cfn-lint run already applies)."""
    _require(JUDGES_VENV / "bin" / "cfn-lint", "the judges' virtualenv")
    paths = [str(p) for p in sorted(templates.glob("*.yaml"))]
    command = [
        str(JUDGES_VENV / "bin" / "cfn-lint"),
        "--append-rules",
        "cfn_lint_serverless.rules",
        "--format",
        "json",
        "--",
        *paths,
    ]
    return subprocess.Popen(
        command, cwd=tempfile.gettempdir(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_serverless(stdout: str) -> list[Finding]:
    found = []
    for match in json.loads(stdout or "[]"):
        path = match["Location"].get("Path") or []
        resource = str(path[1]) if len(path) > 1 and path[0] == "Resources" else ""
        found.append(
            Finding("cfn-lint-serverless", match["Rule"]["Id"], _stem(match["Filename"]), resource, match["Message"])
        )
    return found


def _finish(process: subprocess.Popen[str], judge: str, ok: set[int]) -> str:
    stdout, stderr = process.communicate()
    if process.returncode not in ok:
        raise RuntimeError(f"{judge} failed (exit {process.returncode}): {stderr.strip()[-2000:]}")
    return stdout


def run_judges(templates: Path = TEMPLATES) -> list[Finding]:
    """Every finding of the three judges on `templates`."""
    with tempfile.TemporaryDirectory() as out:
        ripper, guard, serverless = (
            start_cfripper(templates, Path(out)),
            start_guard(templates),
            start_serverless(templates),
        )
        _finish(ripper, "cfripper", {0, 2})  # 2: a template has findings
        guard_out = _finish(guard, "cfn-guard", {0, 19})  # 19: a rule failed
        serverless_out = _finish(serverless, "cfn-lint-serverless", {0, 2, 4, 6, 8, 10, 12, 14})
        return sorted({*read_cfripper(Path(out)), *read_guard(guard_out), *read_serverless(serverless_out)})


@dataclass
class Verdict:
    findings: list[Finding]
    open: list[Finding]  # neither fixed nor excused
    unused: list[str]  # exceptions that excuse nothing


def judge(findings: list[Finding], exceptions: list[Excuse]) -> Verdict:
    excused = {key for e in exceptions for key in e.finding_keys()}
    seen = {f.key for f in findings}
    unused = sorted(" ".join(k) for e in exceptions for k in e.finding_keys() if k not in seen)
    return Verdict(findings, [f for f in findings if f.key not in excused], unused)


def summary(findings: list[Finding]) -> dict[str, int]:
    return {name: sum(f.judge == name for f in findings) for name in JUDGES}


def main(argv: list[str] | None = None) -> int:
    templates = Path(argv[0]) if argv else TEMPLATES
    verdict = judge(run_judges(templates), load_exceptions())
    for finding in verdict.open:
        print(f"FINDING {finding.explain()}")
    for entry in verdict.unused:
        print(f"UNUSED EXCEPTION {entry} (no judge finds it any more: remove it from {EXCEPTIONS_FILE.name})")
    counts = ", ".join(f"{name} {n}" for name, n in summary(verdict.findings).items())
    print(
        f"judges: {len(verdict.findings)} findings ({counts}), {len(verdict.findings) - len(verdict.open)} "
        f"excused in {EXCEPTIONS_FILE.name}, {len(verdict.open)} open, {len(verdict.unused)} unused exceptions"
    )
    return 1 if verdict.open or verdict.unused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
