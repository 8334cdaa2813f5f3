"""`python -m generator` and the `cc-websocket-generate` console script."""

import sys

from generator.project import take_project_dir


def main() -> int:
    argv = take_project_dir(sys.argv[1:])  # before the generator's modules locate the project
    from generator.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
