"""`python -m rollout` and the `cc-websocket-rollout` console script."""

import sys

from generator.project import take_project_dir


def main() -> int:
    argv = take_project_dir(sys.argv[1:])  # before the commands' modules locate the project
    from rollout.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
