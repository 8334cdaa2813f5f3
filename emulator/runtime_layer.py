"""What the Python Lambda runtime puts on a function's path besides its zip: boto3, botocore and
their dependencies, and the Runtime Interface Client. Built once per emulator as a folder of
links into this interpreter's site-packages, so a function sees those and nothing else of the
emulator's environment (a dependency missing from its zip fails as on AWS)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

RUNTIME_DISTRIBUTIONS = ("boto3", "awslambdaric")
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def closure(names: tuple[str, ...] = RUNTIME_DISTRIBUTIONS) -> list[metadata.Distribution]:
    """The named distributions and everything they require (extras left out), as installed here."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in found:
            continue
        try:
            found[key] = distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in names:
                raise
            continue  # a requirement for another Python version or platform
        for requirement in distribution.requires or []:
            if "extra ==" in requirement:
                continue
            match = REQUIREMENT_NAME.match(requirement)
            if match:
                todo.append(match[1])
    return list(found.values())


def build(target: Path) -> Path:
    """Link every top-level module, package and metadata folder of the runtime's distributions
    into `target` (created); returns it."""
    target.mkdir(parents=True, exist_ok=True)
    for distribution in closure():
        site = Path(str(distribution.locate_file("")))
        for entry in {Path(str(file)).parts[0] for file in distribution.files or []}:
            if entry in ("..", "__pycache__") or entry.endswith(".pth"):
                continue
            link = target / entry
            if not link.exists() and (site / entry).exists():
                link.symlink_to(site / entry)
    return target
