"""Benchmark sessionware against the raw clients and the peers: ``python benchmarks/run.py [--quick] [--json PATH]``.

A thin wrapper around :func:`benchmarks.harness.main`; see ``benchmarks/README.md``.
Install the peers first: ``pip install -r benchmarks/requirements.txt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the checkout, so that ``benchmarks.harness`` imports
    try:
        import sessionware  # noqa: F401
    except ImportError:  # run from a checkout without installing: use its src/
        sys.path.insert(0, str(ROOT / "src"))
    from benchmarks.harness import main

    sys.exit(main())
