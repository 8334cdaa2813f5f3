"""`python -m rollout` and its console script."""

import sys

from rollout.cli import main

if __name__ == "__main__":
    sys.exit(main())
