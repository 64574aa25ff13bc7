"""The agent-turn benchmark (W2) alone: ``python benchmarks/agent_turn.py [--quick] [--backends ...] [--json PATH]``.

Shorthand for ``python benchmarks/run.py --workloads w2 ...``, which measures
our SessionManager against openai-agents' sessions and the raw clients at 50
and at 5,000 messages per conversation; see ``benchmarks/README.md``.
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

    sys.exit(sessionware.bench.main(["--workloads", "w2", *sys.argv[1:]], prog="benchmarks/agent_turn.py"))
