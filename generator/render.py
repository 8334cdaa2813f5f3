"""Turn templates into text, write them atomically, and tell which committed files are stale."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from troposphere import Template

FORMATS = ("yaml", "json")


def render(template: Template, fmt: str) -> str:
    """Long-form YAML (plain `Fn::Sub:` keys, readable by any YAML parser) or JSON."""
    if fmt == "yaml":
        return template.to_yaml(long_form=True)
    if fmt == "json":
        return json.dumps(template.to_dict(), indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def file_name(stem: str, fmt: str) -> str:
    return f"{stem}.{fmt}"


def write_all(texts: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write every file through a temporary file and rename, so a reader never sees half."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        target = out_dir / name
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
        written.append(target)
    return written


@dataclass(frozen=True)
class Staleness:
    missing: list[str]
    stale: list[str]
    unexpected: list[str]

    @property
    def clean(self) -> bool:
        return not (self.missing or self.stale or self.unexpected)

    def explain(self, out_dir: Path) -> str:
        lines = [f"{out_dir}/{n}: missing" for n in self.missing]
        lines += [f"{out_dir}/{n}: stale (differs from what the generator produces)" for n in self.stale]
        lines += [f"{out_dir}/{n}: not produced by the generator" for n in self.unexpected]
        return "\n".join(lines)


def compare(texts: Mapping[str, str], out_dir: Path, fmt: str) -> Staleness:
    """Compare freshly rendered texts with the files in `out_dir` (only files of `fmt`)."""
    present = {p.name for p in out_dir.glob(f"*.{fmt}")} if out_dir.is_dir() else set()
    missing = sorted(n for n in texts if n not in present)
    stale = sorted(n for n in texts if n in present and (out_dir / n).read_text(encoding="utf-8") != texts[n])
    unexpected = sorted(present - set(texts))
    return Staleness(missing, stale, unexpected)
