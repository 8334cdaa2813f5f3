"""Where the project's own files are: the folder holding `environments/`, `templates_out/`,
`requirements/` and `handlers/`. Never site-packages: an installed command works on the project it
is run in. One `Project` is made by each command's `main` and passed down; nothing reads it at
import.

`Project.find(given)`: `given` (what `--project-dir` says), else the working directory or the
nearest folder above it holding `templates_out/`, else the source checkout these modules came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCE_CHECKOUT = Path(__file__).resolve().parent.parent
MARKER = "templates_out"


class ProjectNotFound(ValueError):
    """--project-dir names a folder that is not a project: says what is missing."""


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def find(cls, given: Path | str | None = None) -> Project:
        if given is not None:
            folder = Path(given).resolve()
            if not (folder / MARKER).is_dir():
                raise ProjectNotFound(f"--project-dir {given}: no {MARKER}/ there; point it at the project folder")
            return cls(folder)
        here = Path.cwd().resolve()
        return cls(next((f for f in (here, *here.parents) if (f / MARKER).is_dir()), SOURCE_CHECKOUT))

    @property
    def environments(self) -> Path:
        return self.root / "environments"

    @property
    def templates_out(self) -> Path:
        return self.root / MARKER

    @property
    def handlers(self) -> Path:
        """The handlers' sources the package is built from (the project's, never an installed copy)."""
        return self.root / "handlers"

    @property
    def requirements(self) -> Path:
        return self.root / "requirements"

    @property
    def cache(self) -> Path:
        return self.root / ".cache"

    @property
    def build(self) -> Path:
        return self.root / "build"
