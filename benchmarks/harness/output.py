"""Showing a run: progress while it runs, then one table per workload (rich on a terminal, plain otherwise)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from typing import Any, Protocol, TextIO

from .measure import Meter
from .report import Report, Row, WorkloadReport


class Progress(Protocol):
    """Shows how far a run is; ``track`` wraps one timed run and yields the meter its loop counts on."""

    def track(self, label: str, total: int) -> AbstractAsyncContextManager[Meter]:
        """Track one timed run of ``total`` operations."""
        ...


class NoProgress:
    """Shows nothing."""

    @asynccontextmanager
    async def track(self, label: str, total: int) -> AsyncIterator[Meter]:
        """Yield a meter nobody reads."""
        yield Meter()


class LineProgress:
    """One line per finished run, for logs and pipes, and one every ``every`` seconds while a run lasts."""

    def __init__(self, stream: TextIO | None = None, *, every: float = 10.0) -> None:
        self.stream = stream
        self.every = every

    @asynccontextmanager
    async def track(self, label: str, total: int) -> AsyncIterator[Meter]:
        """Print the label and how many operations finished once the run ends (and meanwhile)."""
        meter = Meter()
        start = time.perf_counter()

        def line(end: str) -> None:
            elapsed = time.perf_counter() - start
            print(f"  {label}: {meter.done}/{total}{end} in {elapsed:.1f}s", file=self.stream or sys.stderr, flush=True)

        async def follow() -> None:
            while True:
                await asyncio.sleep(self.every)
                if meter.done < total:
                    line(" so far")

        follower = asyncio.get_running_loop().create_task(follow())
        try:
            yield meter
        finally:
            follower.cancel()
            with suppress(asyncio.CancelledError):
                await follower
            line("")


class RichProgress:
    """A rich progress bar per run; the bar is read from the meter a few times a second, not per operation."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    @asynccontextmanager
    async def track(self, label: str, total: int) -> AsyncIterator[Meter]:
        """Show a bar for the run, refreshed from its meter."""
        meter = Meter()
        task = self.progress.add_task(label, total=total)

        async def follow() -> None:
            while True:
                self.progress.update(task, completed=meter.done)
                await asyncio.sleep(0.25)

        follower = asyncio.get_running_loop().create_task(follow())
        try:
            yield meter
        finally:
            follower.cancel()
            with suppress(asyncio.CancelledError):
                await follower
            self.progress.update(task, completed=meter.done)


def have_rich() -> bool:
    """Whether rich can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def progress_for(stream: TextIO, *, enabled: bool = True) -> Iterator[Progress]:
    """Rich bars when ``stream`` is a terminal and rich is installed, else one line per run."""
    if not enabled:
        yield NoProgress()
        return
    if stream.isatty() and have_rich():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBars

        bars = RichBars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            refresh_per_second=4,
        )
        with bars:
            yield RichProgress(bars)
        return
    yield LineProgress(stream)


# -- tables ------------------------------------------------------------------------------------------

W1_COLUMNS = ("backend", "subject", "conc", "ops/s", "p50 ms", "p99 ms", "lost", "ours/this", "target")
W3_COLUMNS = (
    "backend",
    "subject",
    "procs x tasks",
    "expected",
    "final",
    "lost",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "ours/this",
    "target",
)
W1S_COLUMNS = ("backend", "subject", "conc", "stored", "prefill s", "ops/s", "p50 ms", "p99 ms", "lost", "target")
OURS_SHORT = {"ours": "local", "ours-distributed": "distributed"}
NUMERIC = {"conc", "ops/s", "p50 ms", "p99 ms", "lost", "expected", "final", "procs x tasks", "stored", "prefill s"}


def _ratio_cells(workload: WorkloadReport, row: Row) -> tuple[str, str]:
    ratios = [
        r
        for r in workload.ratios
        if r.backend == row.backend and r.concurrency == row.concurrency and r.baseline == row.subject
    ]
    several = len({r.ours for r in workload.ratios}) > 1
    ratio_text, target_text = [], []
    for r in ratios:
        value = "n/a" if r.ratio is None else f"{r.ratio:.2f}x"
        ratio_text.append(f"{value} vs {OURS_SHORT.get(r.ours, r.ours)}" if several else value)
        if r.target_text:
            target_text.append(r.target_text)
    if row.target:
        target_text.append(f"{row.target} {'n/a' if row.met is None else 'met' if row.met else 'missed'}")
    return "; ".join(ratio_text), "; ".join(target_text)


def table_rows(workload: WorkloadReport) -> tuple[tuple[str, ...], list[list[str]]]:
    """The column names and the cells of a workload's table."""
    w3 = workload.id == "w3"
    columns = {"w3": W3_COLUMNS, "w1s": W1S_COLUMNS}.get(workload.id, W1_COLUMNS)
    cells: list[list[str]] = []
    for row in workload.rows:
        ratio, target = _ratio_cells(workload, row)
        if row.status == "ok":
            numbers = [f"{row.ops_per_s:,.0f}", f"{row.p50_ms:.3f}", f"{row.p99_ms:.3f}"]
            lost = f"{row.lost:,}" if row.lost is not None else ""
        else:
            reason = row.note if row.status == "n/a" else f"error ({row.note.partition(':')[0]}, see below)"
            numbers, lost = [reason, "", ""], ""
        if w3:
            shape = f"{row.processes}x{row.concurrency}"
            counts = [
                "" if row.expected is None else f"{row.expected:,}",
                "" if row.final is None else f"{row.final:,}",
                lost,
            ]
            cells.append([row.backend, row.label, shape, *counts, *numbers, ratio, target])
        elif workload.id == "w1s":
            stored = getattr(row, "stored", None)
            prefill_s = getattr(row, "prefill_s", None)
            bulk = ["" if stored is None else f"{stored:,}", "" if prefill_s is None else f"{prefill_s:.1f}"]
            conc = str(row.concurrency) if row.status != "n/a" else ""
            cells.append([row.backend, row.label, conc, *bulk, *numbers, lost, target])
        else:
            cells.append([row.backend, row.label, str(row.concurrency), *numbers, lost, ratio, target])
    return columns, cells


def _aligned(columns: tuple[str, ...], widths: list[int], values: list[str] | tuple[str, ...]) -> str:
    parts = [
        v.rjust(w) if columns[i] in NUMERIC and not v.startswith(("n/a", "error")) else v.ljust(w)
        for i, (v, w) in enumerate(zip(values, widths, strict=True))
    ]
    return "  ".join(parts).rstrip()


def render_plain(report: Report, out: TextIO) -> None:
    """Aligned plain-text tables, one per workload."""
    for workload in report.workloads:
        columns, cells = table_rows(workload)
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        print(f"{workload.id.upper()} {workload.title}", file=out)
        print(_aligned(columns, widths, columns), file=out)
        print(_aligned(columns, widths, ["-" * w for w in widths]), file=out)
        for row_cells in cells:
            print(_aligned(columns, widths, row_cells), file=out)
        print(file=out)
    _footer(report, out)


def render_rich(report: Report, out: TextIO) -> None:
    """rich tables, one per workload."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out)
    for workload in report.workloads:
        columns, cells = table_rows(workload)
        table = Table(title=f"{workload.id.upper()} {workload.title}", title_justify="left")
        for name in columns:
            table.add_column(name, justify="right" if name in NUMERIC else "left")
        for row_cells in cells:
            styled = [
                Text(c, style="green" if c.endswith("met") else "red" if c.endswith("missed") else "")
                for c in row_cells
            ]
            table.add_row(*styled)
        console.print(table)
    _footer(report, out)


def _footer(report: Report, out: TextIO) -> None:
    for row in report.errors:
        print(f"error: {row.workload} {row.backend} {row.subject} c={row.concurrency}: {row.note}", file=out)
    m = report.machine
    print(
        f"{report.date} · {m['cpu_count']} CPUs ({m['cpu']}) · Python {m['python']} · "
        f"ratios are ours / baseline throughput, measured in this run",
        file=out,
    )
    for workload_id, reason in report.pending.items():
        print(f"{workload_id.upper()}: not measured: {reason}", file=out)


def render(report: Report, out: TextIO | None = None, *, rich: bool | None = None) -> None:
    """Print the report's tables: rich when ``out`` is a terminal (and rich is installed), else plain text."""
    out = out or sys.stdout
    if rich is None:
        rich = out.isatty() and have_rich()
    (render_rich if rich else render_plain)(report, out)
