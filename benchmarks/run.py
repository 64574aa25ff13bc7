"""Benchmark sessionware against the raw clients and the peers: ``python benchmarks/run.py [--quick] [--json PATH]``.

A thin wrapper around :func:`sessionware.bench.main`; see ``benchmarks/README.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    try:
        import sessionware.bench
    except ImportError:  # run from a checkout without installing: use its src/
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
        import sessionware.bench

    sys.exit(sessionware.bench.main())
