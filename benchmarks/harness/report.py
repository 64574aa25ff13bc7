"""The benchmark report: one row per measured subject, ratios between rows of the same run, JSON form."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .config import BenchConfig
from .measure import Timing, percentile

REPORT_SCHEMA = 1

PACKAGES = ("sessionware", "redis", "hiredis", "asyncpg", "aiogram", "openai-agents", "rich")


@dataclass
class Row:
    """One measured subject in one configuration (backend, concurrency or processes)."""

    workload: str
    backend: str
    subject: str
    label: str
    ours: bool
    concurrency: int
    processes: int = 1
    status: str = "ok"
    """``ok``, ``n/a`` (not applicable: ``note`` says why) or ``error`` (``note`` has the error)."""
    note: str = ""
    ops: int = 0
    seconds: float = 0.0
    ops_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    expected: int | None = None
    final: int | None = None
    lost: int | None = None
    round_ops_per_s: list[float] = field(default_factory=list)
    """Throughput of every round (``--rounds``); the row's numbers are those of the median round."""
    target: str = ""
    """A goal this row itself must meet (e.g. ``0 lost``), shown with ``met``."""
    met: bool | None = None

    def measured(self, timing: Timing, *, expected: int, final: int) -> None:
        """Fill in the numbers of a finished run."""
        ordered = sorted(timing.latencies)
        self.status = "ok"
        self.ops = timing.ops
        self.seconds = timing.seconds
        self.ops_per_s = timing.ops_per_s
        self.p50_ms = percentile(ordered, 50) * 1000
        self.p99_ms = percentile(ordered, 99) * 1000
        self.expected = expected
        self.final = final
        self.lost = expected - final


@dataclass(frozen=True)
class Target:
    """A goal from the issue: ``ours`` at least ``min_ratio`` times as fast as ``baseline``."""

    workload: str
    backend: str
    ours: str
    baseline: str
    min_ratio: float
    concurrency: int | None = None
    """Only at this concurrency (``None``: at every concurrency)."""
    no_lost: bool = False
    """Also require that ``ours`` lost no update."""


@dataclass
class Ratio:
    """Throughput of an ``ours`` row divided by a baseline row's, both measured in this run."""

    workload: str
    backend: str
    concurrency: int
    ours: str
    baseline: str
    ratio: float | None
    min_ratio: float | None = None
    met: bool | None = None
    note: str = ""

    @property
    def target_text(self) -> str:
        """``≥2.0x met`` / ``≥1.0x missed``, or empty when there is no target."""
        if self.min_ratio is None:
            return ""
        verdict = "n/a" if self.met is None else ("met" if self.met else "missed")
        return f"≥{self.min_ratio:.1f}x {verdict}"


@dataclass
class WorkloadReport:
    """Every row of one workload, with its ratios."""

    id: str
    title: str
    rows: list[Row] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)


@dataclass
class Report:
    """A whole benchmark run, ready to print or to keep as JSON."""

    date: str
    machine: dict[str, Any]
    config: dict[str, Any]
    workloads: list[WorkloadReport] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    schema: int = REPORT_SCHEMA

    @property
    def errors(self) -> list[Row]:
        """Rows whose run failed."""
        return [row for w in self.workloads for row in w.rows if row.status == "error"]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-compatible data."""
        return asdict(self)

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write the report as indented JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def compute_ratios(workload: WorkloadReport, pairs: list[tuple[str, str]] | None, targets: list[Target]) -> list[Ratio]:
    """Ratios of each ``ours`` row to each baseline row of the same backend and concurrency.

    ``pairs`` limits them to (ours subject, baseline subject) pairs; ``None`` pairs every ours
    row with every baseline row. A pair where either side did not run gets ``ratio=None``.
    """
    ratios: list[Ratio] = []
    for ours in workload.rows:
        if not ours.ours:
            continue
        for base in workload.rows:
            if base.ours or base.backend != ours.backend or base.concurrency != ours.concurrency:
                continue
            if pairs is not None and (ours.subject, base.subject) not in pairs:
                continue
            ran = ours.status == "ok" and base.status == "ok" and base.ops_per_s > 0
            ratio = Ratio(
                workload.id,
                ours.backend,
                ours.concurrency,
                ours.subject,
                base.subject,
                ours.ops_per_s / base.ops_per_s if ran else None,
            )
            if not ran:
                ratio.note = ours.note if ours.status != "ok" else base.note
            for target in targets:
                if (target.workload, target.backend, target.ours, target.baseline) != (
                    workload.id,
                    ours.backend,
                    ours.subject,
                    base.subject,
                ):
                    continue
                if target.concurrency is not None and target.concurrency != ours.concurrency:
                    continue
                ratio.min_ratio = target.min_ratio
                if ratio.ratio is not None:
                    ratio.met = ratio.ratio >= target.min_ratio and (not target.no_lost or ours.lost == 0)
            ratios.append(ratio)
    return ratios


def redact(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def machine_info() -> dict[str, Any]:
    """The machine, interpreter and package versions a run was measured on."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average": list(load) if load else None,
        "packages": versions,
    }


def config_info(config: BenchConfig) -> dict[str, Any]:
    """The configuration as JSON-compatible data, passwords removed."""
    data = asdict(config)
    data["redis_url"] = redact(config.redis_url)
    data["postgres_url"] = redact(config.postgres_url)
    data["workdir"] = None if config.workdir is None else str(config.workdir)
    data["workloads"] = list(config.workloads)
    data["backends"] = list(config.backends)
    data["concurrency"] = list(config.concurrency)
    return data


def now_iso() -> str:
    """The current UTC time in ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")
