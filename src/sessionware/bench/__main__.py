"""``python -m sessionware.bench`` runs the benchmark command."""

import sys

from . import main

if __name__ == "__main__":  # not when a spawned worker process re-imports this module
    sys.exit(main(prog="python -m sessionware.bench"))
