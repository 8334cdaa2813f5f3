"""`python -m generator` and its console script."""

import sys

from generator.cli import main

if __name__ == "__main__":
    sys.exit(main())
