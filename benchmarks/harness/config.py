"""What a benchmark run measures: sizes, backends, servers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

BACKENDS = ("memory", "sqlite", "redis", "postgres")
DEFAULT_WORKLOADS = ("w1", "w2", "w3")
"""What a run measures unless told otherwise; W1 at scale (``w1s``) runs only when named."""
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and targets of one benchmark run; :meth:`quick` is ten times smaller.

    Server URLs default to ``SESSIONWARE_BENCH_REDIS_URL`` and
    ``SESSIONWARE_BENCH_POSTGRES_URL``, else the loopback servers. SQLite
    files go to ``workdir`` (a fresh temporary directory when ``None``).
    """

    workloads: tuple[str, ...] = DEFAULT_WORKLOADS
    backends: tuple[str, ...] = BACKENDS
    quick: bool = False
    # W1: bot updates
    users: int = 2_000
    updates: int = 20_000
    concurrency: tuple[int, ...] = (1, 64)
    history: int = 20
    # W1s: W1 on a store of scale_small and on one of scale sessions, prefilled in bulk
    scale: int = 1_000_000
    scale_small: int = 1_000
    # W3: lost updates
    tasks: int = 50
    increments: int = 100
    processes: int = 4
    seed: int = 6
    rounds: int = 1
    """Times each measurement is repeated (order rotated); rows report the median round."""
    redis_url: str = field(default_factory=lambda: os.environ.get("SESSIONWARE_BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    postgres_url: str = field(
        default_factory=lambda: os.environ.get("SESSIONWARE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )
    workdir: Path | None = None

    def shrunk(self) -> BenchConfig:
        """The ``--quick`` version of this configuration: ten times fewer updates, users, increments, W1s sessions."""
        return replace(
            self,
            quick=True,
            users=max(1, self.users // 10),
            updates=max(1, self.updates // 10),
            increments=max(1, self.increments // 10),
            scale=max(self.scale_small, self.scale // 10),
        )
