"""Is templates_out/ what the generator produces? Answered without re-emitting YAML when nothing
changed since the last time it was checked.

Rendering every template costs about half a second. The answer depends only on the generator's
sources, the versions of troposphere and awacs, and the committed files, so a successful check
records the hash of all three (`.cache/templates-verified`); the next check with the same hash
reads templates_out/ and is done. Anything else renders and compares, as `generator --check`
(which CI runs) always does.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import generator
from generator.project import Project

GENERATOR = Path(generator.__file__).resolve().parent  # the generator this installation runs


class StaleTemplates(RuntimeError):
    """templates_out/ differs from what the generator produces; the text names the files."""


def inputs_key(project: Project) -> str:
    digest = hashlib.sha256()
    for package in ("troposphere", "awacs"):
        digest.update(f"{package}=={metadata.version(package)}|".encode())
    for folder, pattern in ((GENERATOR, "*.py"), (project.templates_out, "*.yaml")):
        for path in sorted(folder.glob(pattern)):
            digest.update(f"{folder.name}/{path.name}|".encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def verified(project: Project) -> bool:
    """templates_out/ is known to be what the generator produces (checked since its last change)."""
    record = project.cache / "templates-verified"
    return record.is_file() and record.read_text().strip() == inputs_key(project)


def fresh_templates(project: Project) -> dict[str, str]:
    """The committed templates by stem, once they are known to be what the generator produces."""
    out, record = project.templates_out, project.cache / "templates-verified"
    if verified(project):
        return {path.stem: path.read_text(encoding="utf-8") for path in sorted(out.glob("*.yaml"))}
    from generator.build import build_all, render_all  # imported only when a render is needed
    from generator.render import compare

    texts = render_all(build_all(), "yaml")
    stale = compare(texts, out, "yaml")
    if not stale.clean:
        raise StaleTemplates(
            "templates_out/ is not what the generator produces:\n"
            + stale.explain(out)
            + "\nRun `python -m generator`, review and commit templates_out/, then deploy."
        )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(inputs_key(project))
    return {name.removesuffix(".yaml"): text for name, text in texts.items()}
