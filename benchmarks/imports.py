"""What ``import sessionware`` costs against ``import pydantic``, measured in fresh interpreters in one run.

``python benchmarks/imports.py [--runs N]`` prints the best cumulative import
time of each (from ``python -X importtime``) and their ratio against the
target of at most 1.5x, plus the import of the seed's names (Router, session)
and of the agent surface for reference.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

TARGET = 1.5

BASELINE = "import pydantic"
CASES = [
    BASELINE,
    "import sessionware",
    "from sessionware import Router, session",
    "from sessionware import SessionManager",
]


def import_us(code: str, runs: int) -> int:
    """The best of ``runs`` fresh interpreters' total import time for ``code`` (the sum of every module's own
    time that ``-X importtime`` reports), in microseconds."""
    times = []
    for _ in range(runs):
        report = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
        ).stderr
        rows = [line.split(":", 1)[1].split("|") for line in report.splitlines() if line.startswith("import time:")]
        times.append(sum(int(row[0]) for row in rows if row[0].strip().isdigit()))
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per case (the best counts)")
    args = parser.parse_args()
    results = {code: import_us(code, args.runs) for code in CASES}
    baseline = results[BASELINE]
    print(f"{'what':42s} {'ms':>8s}  {'vs pydantic':>11s}  target")
    for label, us in results.items():
        ratio = us / baseline
        target = ""
        if label == "import sessionware":
            target = f"≤{TARGET}x {'met' if ratio <= TARGET else 'missed'}"
        print(f"{label:42s} {us / 1000:8.1f}  {ratio:10.2f}x  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
