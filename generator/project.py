"""Where the project's own files are: the folder holding `environments/`, `templates_out/` and
`requirements/`. Never site-packages: an installed command works on the project it is run in.

In order: `CC_PROJECT_DIR` (what `--project-dir` sets), the working directory or the nearest
folder above it holding `templates_out/`, else the source checkout these modules came from.
"""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_CHECKOUT = Path(__file__).resolve().parent.parent
MARKER = "templates_out"


def root() -> Path:
    given = os.environ.get("CC_PROJECT_DIR")
    if given:
        return Path(given).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_dir():
            return folder
    return SOURCE_CHECKOUT


def take_project_dir(argv: list[str]) -> list[str]:
    """Remove `--project-dir DIR` from the arguments and make DIR the project root. Done before
    the commands' modules load, since they locate the project's files when they do."""
    rest, index = [], 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--project-dir" and index + 1 < len(argv):
            os.environ["CC_PROJECT_DIR"] = argv[index + 1]
            index += 2
            continue
        if arg.startswith("--project-dir="):
            os.environ["CC_PROJECT_DIR"] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        index += 1
    folder = os.environ.get("CC_PROJECT_DIR")
    if folder and not (Path(folder) / MARKER).is_dir():
        raise SystemExit(f"error: --project-dir {folder}: no {MARKER}/ there; point it at the project folder")
    return rest
