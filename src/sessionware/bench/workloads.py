"""The workloads: W1 (bot updates) and W3 (lost updates). W2 (agent turns) plugs in here the same way."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..middleware import Isolation
from ..router import Update
from ..store import LockingStore
from .config import BenchConfig
from .measure import Timing, run_queue, run_tasks
from .output import Progress
from .procs import run_in_processes
from .report import Row, Target, WorkloadReport, compute_ratios
from .spaces import unique_name
from .subjects import Recipe, make_update

WARM_USER = 900_000_000
FIRST_USER = 100_000

LABELS = {
    "ours": "sessionware Router+session()",
    "ours-distributed": "sessionware, isolation=distributed",
    "dict+json": "dict + stdlib json (raw)",
    "sqlite3": "sqlite3 SELECT+upsert (raw)",
    "redis-py": "redis-py GET+SET (raw)",
    "asyncpg": "asyncpg SELECT+upsert (raw)",
    "aiogram": "aiogram RedisStorage",
    "aiogram-isolated": "aiogram RedisStorage+RedisEventIsolation",
}

TARGETS = [
    Target("w1", "memory", "ours", "dict+json", 1.0),
    Target("w1", "sqlite", "ours", "sqlite3", 1.0),
    Target("w1", "redis", "ours", "redis-py", 1.0, concurrency=64),
    Target("w1", "redis", "ours", "aiogram", 2.0, concurrency=64),
    Target("w1", "postgres", "ours", "asyncpg", 1.0),
    Target("w3", "redis", "ours-distributed", "aiogram-isolated", 2.0, no_lost=True),
]
"""The issue's targets; W1's Redis targets are stated at concurrency 64, the others at every concurrency."""

W1_SUBJECTS = {
    "memory": ("ours", "dict+json"),
    "sqlite": ("ours", "sqlite3"),
    "redis": ("ours", "redis-py", "aiogram"),
    "postgres": ("ours", "asyncpg"),
}


@dataclass(frozen=True)
class Workload:
    """A registered workload: its id, title, and the coroutine that measures it."""

    id: str
    title: str
    run: Callable[[BenchConfig, Path, Progress], Awaitable[WorkloadReport]]


def _recipe(config: BenchConfig, workdir: Path, kind: str, backend: str, isolation: Isolation = "local") -> Recipe:
    return Recipe(
        kind,
        backend,
        unique_name(),
        workdir,
        config.redis_url,
        config.postgres_url,
        isolation=isolation,
        keep=config.history,
    )


def _failed(row: Row, exc: BaseException) -> None:
    row.status = "error"
    row.note = f"{type(exc).__name__}: {exc}".strip()


def _cleanup_failed(row: Row, exc: BaseException) -> None:
    if row.status == "error":  # the run itself failed, most likely for the same reason
        row.note += "; cleaning up failed too"
    else:
        _failed(row, exc)
        row.note = f"cleaning up failed: {row.note}"


Measure = Callable[[Row, str], Awaitable[None]]
"""Fills in a fresh copy of a planned row; the string tags progress labels with the round."""


async def in_rounds(plan: list[tuple[Row, Measure]], rounds: int) -> list[Row]:
    """Measure each planned row ``rounds`` times, rotating the order each round; keep each one's median round.

    A row that failed in any round is reported with that failure. Every
    round's throughput is kept in ``Row.round_ops_per_s``.
    """
    trials: list[list[Row]] = [[] for _ in plan]
    for number in range(rounds):
        shift = number % len(plan) if plan else 0
        for index in [*range(shift, len(plan)), *range(shift)]:
            template, measure = plan[index]
            row = replace(template, round_ops_per_s=[])
            await measure(row, f" (round {number + 1}/{rounds})" if rounds > 1 else "")
            trials[index].append(row)
    chosen: list[Row] = []
    for rows in trials:
        failed = [row for row in rows if row.status != "ok"]
        pick = failed[0] if failed else sorted(rows, key=lambda row: row.ops_per_s)[len(rows) // 2]
        pick.round_ops_per_s = [row.ops_per_s for row in rows]
        chosen.append(pick)
    return chosen


# -- W1 --------------------------------------------------------------------------------------------


def w1_updates(config: BenchConfig) -> tuple[list[Update], list[int]]:
    """``config.updates`` updates spread evenly over ``config.users`` users, in seeded random order."""
    users = [FIRST_USER + i for i in range(config.users)]
    senders = [users[i % len(users)] for i in range(config.updates)]
    random.Random(config.seed).shuffle(senders)
    return [make_update(n + 1, user) for n, user in enumerate(senders)], users


async def _measure_w1(
    recipe: Recipe, row: Row, tag: str, updates: list[Update], users: list[int], progress: Progress
) -> None:
    subject = recipe.build()
    opened = False
    try:
        await subject.open()
        opened = True
        handle = subject.handler()
        warm = [make_update(n, WARM_USER + n % row.concurrency) for n in range(max(100, 2 * row.concurrency))]
        await run_queue(handle, warm, row.concurrency)
        label = f"W1 {row.backend} {row.subject} c={row.concurrency}{tag}"
        async with progress.track(label, len(updates)) as meter:
            timing = await run_queue(handle, updates, row.concurrency, meter)
        row.measured(timing, expected=len(updates), final=await subject.counts(users))
    except Exception as exc:
        _failed(row, exc)
    finally:
        if opened:
            try:
                await subject.close(drop=True)
            except Exception as exc:
                _cleanup_failed(row, exc)


async def run_w1(config: BenchConfig, workdir: Path, progress: Progress) -> WorkloadReport:
    """W1: per update load the sender's session, count, keep the last texts, save."""
    report = WorkloadReport("w1", WORKLOADS["w1"].title)
    updates, users = w1_updates(config)
    for backend in config.backends:
        for concurrency in config.concurrency:
            plan: list[tuple[Row, Measure]] = []
            for kind in W1_SUBJECTS[backend]:

                async def measure(row: Row, tag: str, kind: str = kind, backend: str = backend) -> None:
                    await _measure_w1(_recipe(config, workdir, kind, backend), row, tag, updates, users, progress)

                plan.append((Row("w1", backend, kind, LABELS[kind], kind == "ours", concurrency), measure))
            report.rows.extend(await in_rounds(plan, config.rounds))
    report.ratios = compute_ratios(report, None, TARGETS)
    return report


# -- W3 --------------------------------------------------------------------------------------------

W3_USER = 42
W3_PAIRS = [("ours-distributed", "aiogram-isolated"), ("ours", "redis-py"), ("ours", "aiogram")]


async def _measure_w3(recipe: Recipe, row: Row, tag: str, config: BenchConfig, progress: Progress) -> None:
    update, warm = make_update(1, W3_USER), make_update(2, WARM_USER)
    subject = recipe.build()
    opened = False
    total = config.tasks * config.increments
    try:
        await subject.open()
        opened = True
        label = f"W3 {row.backend} {row.subject} {row.processes}x{config.tasks}{tag}"
        async with progress.track(label, total) as meter:
            timing: Timing
            if row.processes == 1:
                handle = subject.handler()
                await handle(warm)
                timing = await run_tasks(lambda: handle(update), config.tasks, config.increments, meter)
            else:
                timing = await run_in_processes(
                    recipe,
                    processes=row.processes,
                    tasks=config.tasks,
                    per_task=config.increments,
                    update=update,
                    warm=warm,
                    meter=meter,
                )
        row.measured(timing, expected=total, final=await subject.counts([W3_USER]))
        if row.ours:
            row.met = row.lost == 0
    except Exception as exc:
        _failed(row, exc)
    finally:
        if opened:
            try:
                await subject.close(drop=True)
            except Exception as exc:
                _cleanup_failed(row, exc)


async def _lease_support(recipe: Recipe) -> str | None:
    """Why ``recipe``'s store cannot run distributed isolation across processes, or ``None`` if it can."""
    spec = recipe.store_spec()
    if not spec.shared:
        return "n/a (in-process store)"
    store = spec.open()
    try:
        return None if isinstance(store, LockingStore) else "n/a (no leases)"
    finally:
        await store.close()


W3_SUBJECTS: dict[str, tuple[tuple[str, str, Isolation], ...]] = {
    "redis": (
        ("aiogram", "aiogram", "local"),
        ("redis-py", "redis-py", "local"),
        ("aiogram-isolated", "aiogram", "distributed"),
    ),
}
"""Baselines of W3 per backend: (row subject, recipe kind, isolation); isolated ones run in several processes."""


async def run_w3(config: BenchConfig, workdir: Path, progress: Progress) -> WorkloadReport:
    """W3: many tasks increment one session's counter; how many increments survive."""
    report = WorkloadReport("w3", WORKLOADS["w3"].title)

    def new_row(subject: str, backend: str, isolation: Isolation) -> Row:
        processes = config.processes if isolation == "distributed" else 1
        row = Row("w3", backend, subject, LABELS[subject], subject.startswith("ours"), config.tasks, processes)
        if row.ours:
            row.target = "0 lost"
        return row

    for backend in config.backends:
        runs: list[tuple[str, str, Isolation]] = [
            ("ours", "ours", "local"),
            ("ours-distributed", "ours", "distributed"),
        ]
        runs += W3_SUBJECTS.get(backend, ())
        plan: list[tuple[Row, Measure]] = []
        skipped: list[Row] = []
        for subject, kind, isolation in runs:
            row = new_row(subject, backend, isolation)
            if subject == "ours-distributed":
                try:
                    unsupported = await _lease_support(_recipe(config, workdir, kind, backend, isolation))
                except Exception as exc:
                    _failed(row, exc)
                    skipped.append(row)
                    continue
                if unsupported is not None:
                    row.status, row.note = "n/a", unsupported
                    skipped.append(row)
                    continue

            async def measure(
                row: Row, tag: str, kind: str = kind, backend: str = backend, isolation: Isolation = isolation
            ) -> None:
                await _measure_w3(_recipe(config, workdir, kind, backend, isolation), row, tag, config, progress)

            plan.append((row, measure))
        measured = {row.subject: row for row in await in_rounds(plan, config.rounds)}
        measured.update({row.subject: row for row in skipped})
        report.rows.extend(measured[subject] for subject, _, _ in runs)
    report.ratios = compute_ratios(report, W3_PAIRS, TARGETS)
    return report


WORKLOADS: dict[str, Workload] = {
    "w1": Workload("w1", "bot update: load, count, keep last 20, save", run_w1),
    "w3": Workload("w3", "lost updates: tasks x read-modify-write of one session", run_w3),
}
"""Workloads that can run, in order. A new one (W2) adds an entry here and its rows use the same report."""

PENDING: dict[str, str] = {
    "w2": "agent turn: waits for SessionManager (sessionware.agents); its subjects and runner plug into WORKLOADS",
}
"""Workloads named by the issue that cannot run yet, with the reason shown in reports."""
