"""sessionware's benchmark harness: ours against the raw clients and the peers users would pick instead.

Run it with ``python benchmarks/run.py``;
from code, ``main(argv)`` is the whole command and :func:`run_bench` returns a
:class:`Report` to render or keep as JSON. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from .config import BACKENDS, DEFAULT_WORKLOADS, BenchConfig
from .output import NoProgress, Progress, progress_for, render
from .report import Report, Row, WorkloadReport, config_info, machine_info, now_iso
from .workloads import PENDING, TARGETS, WORKLOADS


async def run_bench(config: BenchConfig, *, progress: Progress | None = None) -> Report:
    """Measure every workload of ``config`` on its backends; each subject runs in a fresh namespace.

    A subject that fails (e.g. an unreachable server) gets a row with
    ``status="error"`` and the rest still run. Workloads named in ``config``
    that cannot run yet are listed in ``Report.pending``.
    """
    progress = progress or NoProgress()
    report = Report(date=now_iso(), machine=machine_info(), config=config_info(config))
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="sessionware-bench-"))
    try:
        for workload_id in config.workloads:
            if workload_id in PENDING:
                report.pending[workload_id] = PENDING[workload_id]
                continue
            report.workloads.append(await WORKLOADS[workload_id].run(config, workdir, progress))
    finally:
        if config.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _names(text: str, known: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        wrong = ", ".join(unknown) or "(none)"
        raise argparse.ArgumentTypeError(f"unknown {what} {wrong}; choose from {', '.join(known)}")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _counts(text: str) -> tuple[int, ...]:
    return tuple(_positive(part.strip()) for part in text.split(","))


def parser(prog: str = "benchmarks/run.py") -> argparse.ArgumentParser:
    """The command line of ``benchmarks/run.py`` (``prog`` names it in usage messages)."""
    workloads = (*WORKLOADS, *PENDING)
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark sessionware against the raw clients and aiogram, in one run.",
    )
    p.add_argument(
        "--quick", action="store_true", help="ten times fewer updates, increments and W1s sessions (about a minute)"
    )
    p.add_argument("--json", metavar="PATH", type=Path, help="write the whole report (machine, config, rows) as JSON")
    p.add_argument(
        "--workloads",
        type=lambda s: _names(s, sorted(workloads), "workload"),
        default=DEFAULT_WORKLOADS,
        help=f"comma-separated, from {','.join(sorted(workloads))} (default: {','.join(DEFAULT_WORKLOADS)})",
    )
    p.add_argument(
        "--backends",
        type=lambda s: _names(s, BACKENDS, "backend"),
        default=BACKENDS,
        help=f"comma-separated, from {','.join(BACKENDS)} (default: all)",
    )
    p.add_argument("--redis-url", help="Redis server (default: $SESSIONWARE_BENCH_REDIS_URL or db 9 on loopback)")
    p.add_argument("--postgres-url", help="PostgreSQL database (default: $SESSIONWARE_BENCH_POSTGRES_URL or loopback)")
    p.add_argument("--concurrency", type=_counts, help="W1 and W1s concurrency levels, comma-separated (default 1,64)")
    p.add_argument("--processes", type=_positive, help="processes for W3's distributed runs (default 4)")
    p.add_argument(
        "--scale",
        type=_positive,
        metavar="N",
        help=f"sessions in W1s's large store (default {BenchConfig.scale:,}; --quick {BenchConfig.scale // 10:,})",
    )
    p.add_argument("--rounds", type=_positive, help="repeat each measurement N times, report the median (default 1)")
    p.add_argument("--plain", action="store_true", help="plain text tables even on a terminal")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The configuration the parsed arguments ask for (``--scale`` wins over ``--quick``'s)."""
    config = BenchConfig(workloads=args.workloads, backends=args.backends)
    if args.redis_url:
        config = replace(config, redis_url=args.redis_url)
    if args.postgres_url:
        config = replace(config, postgres_url=args.postgres_url)
    if args.concurrency is not None:
        config = replace(config, concurrency=args.concurrency)
    if args.processes is not None:
        config = replace(config, processes=args.processes)
    if args.rounds is not None:
        config = replace(config, rounds=args.rounds)
    if args.quick:
        config = config.shrunk()
    if args.scale is not None:
        config = replace(config, scale=args.scale)
    return config


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "benchmarks/run.py",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the benchmark command; return its exit status (1 if any subject failed to run, else 0).

    ``argv`` defaults to ``sys.argv[1:]``; a usage error raises ``SystemExit(2)``.
    Tables go to ``out`` (stdout), progress to ``err`` (stderr). Missed
    targets are reported, not failures.
    """
    out, err = out or sys.stdout, err or sys.stderr
    command = parser(prog)
    args = command.parse_args(argv)
    config = config_from_args(args)
    if config.scale < config.scale_small:
        command.error(f"argument --scale: must be at least {config.scale_small:,}, the small store's size")
    with progress_for(err, enabled=not args.no_progress) as progress:
        report = asyncio.run(run_bench(config, progress=progress))
    render(report, out, rich=False if args.plain else None)
    if args.json:
        report.write_json(args.json)
        print(f"report written to {args.json}", file=err)
    if report.errors:
        print(f"{len(report.errors)} measurement(s) could not run; see the errors under the tables", file=err)
    return 1 if report.errors else 0


__all__ = [
    "PENDING",
    "TARGETS",
    "WORKLOADS",
    "BenchConfig",
    "Report",
    "Row",
    "WorkloadReport",
    "main",
    "parser",
    "render",
    "run_bench",
]
