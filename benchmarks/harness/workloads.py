"""The workloads: W1 (bot updates), W1s (W1 at scale), W2 (agent turns) and W3 (lost updates)."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from sessionware.bot.adapters import Update
from sessionware.codec import JsonDict
from sessionware.isolation import IsolationName as Isolation
from sessionware.store import BaseSessionStore, LockingStore

from .bulk import FIRST_KEY, clear_redis, count_records, prefill
from .config import BenchConfig
from .measure import Meter, Timing, run_queue, run_tasks
from .output import Progress
from .procs import run_in_processes
from .report import Row, Target, WorkloadReport, compute_ratios
from .spaces import StoreSpec, unique_name
from .subjects import Ours, Recipe, apply_update, make_update
from .turns import Message, TurnRecipe, TurnSubject, exchange, history

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


@dataclass(frozen=True)
class TurnGroup:
    """W2 conversations of one size: how many, how many messages each is prefilled with, turns timed on each."""

    messages: int
    conversations: int
    turns: int


@dataclass(frozen=True)
class ForkGroup:
    """W2 sessions to fork of one size: messages each holds, how many, forks timed of each (at its newest message)."""

    messages: int
    sessions: int
    forks: int


@dataclass(frozen=True)
class ListGroup:
    """A W2 user whose sessions are listed: how many sessions they own, how many pages are timed."""

    sessions: int
    pages: int


@dataclass(frozen=True)
class TurnPlan:
    """The sizes of W2: its groups of conversations, the concurrency, the window a turn reads, the prefill batch;
    the sessions ``fork_session`` is timed on and the users ``list_sessions`` is timed for (none: no such rows)."""

    groups: tuple[TurnGroup, ...]
    concurrency: int = 16
    window: int = 20
    batch: int = 500
    forks: tuple[ForkGroup, ...] = ()
    lists: tuple[ListGroup, ...] = ()
    page: int = 10
    """The ``limit`` of each timed ``list_sessions`` page (the smallest listed user's sessions fill one)."""
    creators: int = 32
    """Concurrent ``create_session`` calls prefilling the listed users' sessions."""


W2_FULL = TurnPlan(
    (TurnGroup(50, 200, 5), TurnGroup(5_000, 20, 50)),
    forks=(ForkGroup(50, 20, 50), ForkGroup(5_000, 20, 50)),
    lists=(ListGroup(10, 200), ListGroup(10_000, 200)),
)
"""200 conversations at 50 messages and 20 at 5,000; 1,000 timed turns each, 16 conversations at a time.
1,000 forks each of 20 sessions of 50 and of 5,000 messages; 200 pages each of users with 10 and 10,000 sessions."""
W2_QUICK = TurnPlan(
    (TurnGroup(50, 32, 5), TurnGroup(5_000, 8, 20)),
    concurrency=8,
    forks=(ForkGroup(50, 8, 20), ForkGroup(5_000, 8, 20)),
    lists=(ListGroup(10, 40), ListGroup(10_000, 40)),
)
"""``--quick``: the same two sizes, 160 timed turns each, 8 conversations at a time (a fifth of the prefill);
160 forks of each size, 40 pages of each user (still 10,000 sessions: they take seconds to create)."""
W2_SLICES = 5
"""Forks and pages of the two sizes are timed in this many alternating slices (turns in as many as the fewest
turns of a conversation)."""

W2_LABELS = {
    "ours": "sessionware SessionManager",
    "ours-openai": "sessionware SessionwareSession (openai-agents)",
    "ours-pydantic": "sessionware PydanticAIHistory (pydantic-ai)",
    "ours-pydantic-store": "sessionware SessionwareConversationStore (pydantic-ai)",
    "ours-adk": "sessionware SessionwareSessionService (google-adk)",
    "pydantic-memory": "pydantic-ai InMemoryConversationStore",
    "adk-memory": "google-adk InMemorySessionService",
    "adk-sqlite": "google-adk SqliteSessionService",
    "openai-sqlite": "openai-agents SQLiteSession",
    "openai-redis": "openai-agents RedisSession",
    "openai-sqlalchemy": "openai-agents SQLAlchemySession",
    "sqlite3": "sqlite3 row per message (raw)",
    "redis-py": "redis-py RPUSH+LRANGE (raw)",
    "asyncpg": "asyncpg row per message (raw)",
    "ours-fork": "sessionware SessionManager.fork_session",
    "ours-list": "sessionware SessionManager.list_sessions",
}
W2_BASELINES: dict[str, tuple[str, ...]] = {
    "memory": ("pydantic-memory", "adk-memory"),
    "sqlite": ("openai-sqlite", "adk-sqlite", "sqlite3"),
    "redis": ("openai-redis", "redis-py"),
    "postgres": ("openai-sqlalchemy", "asyncpg"),
}
"""The subjects W2 measures next to ours on each backend."""
W2_OURS: dict[str, tuple[str, ...]] = {
    "memory": ("ours", "ours-pydantic", "ours-pydantic-store", "ours-adk"),
    "sqlite": ("ours", "ours-openai", "ours-adk"),
    "redis": ("ours", "ours-openai", "ours-pydantic-store"),
    "postgres": ("ours", "ours-openai"),
}
"""Our subjects of W2 on each backend: the manager, and each framework adapter over it where the framework has a
store of its own on the backend (ADK has none on Redis or PostgreSQL here, Pydantic AI only an in-memory one)."""
W2_PEERS: dict[str, tuple[str, ...]] = {
    "ours": ("openai-", "sqlite3", "redis-py", "asyncpg"),
    "ours-openai": ("openai-",),
    "ours-pydantic": ("pydantic-",),
    "ours-pydantic-store": ("pydantic-",),
    "ours-adk": ("adk-",),
}
"""Which baselines each of ours is compared with: those whose kind starts with one of these (the manager with the
openai-agents sessions and the raw clients, each adapter with its framework's own stores)."""
W2_MIN_RATIOS = {
    "openai-sqlite": 2.0,
    "openai-redis": 2.0,
    "openai-sqlalchemy": 5.0,
    "pydantic-memory": 2.0,
    "adk-memory": 2.0,
    "adk-sqlite": 2.0,
}
W2_COST_LIMIT = 1.2
"""Ours' time per turn (per fork, per page) at the largest size may be at most this many times its time at the
smallest."""
W2_FORK = "ours-fork"
W2_LIST = "ours-list"
"""The manager's own operations W2 times on every backend besides turns, each against itself at the smaller size:
``fork_session`` of a short and of a long session, a ``list_sessions`` page of a user with few and with many."""


def turn_subject(kind: str, messages: int) -> str:
    """The row subject of W2 subject ``kind`` on conversations of ``messages`` messages, e.g. ``ours@5000``."""
    return f"{kind}@{messages}"


def w2_targets(plan: TurnPlan) -> list[Target]:
    """W2's throughput targets against openai-agents, at every size of ``plan``."""
    return [
        Target("w2", backend, turn_subject(ours, group.messages), turn_subject(kind, group.messages), minimum)
        for backend, kinds in W2_BASELINES.items()
        for ours in W2_OURS[backend]
        for kind in kinds
        if _w2_compared(ours, kind) and (minimum := W2_MIN_RATIOS.get(kind)) is not None
        for group in plan.groups
    ]


def _w2_compared(ours: str, kind: str) -> bool:
    """Whether W2 compares our subject ``ours`` with baseline ``kind``."""
    return kind.startswith(W2_PEERS[ours])


TARGETS = [
    Target("w1", "memory", "ours", "dict+json", 1.0),
    Target("w1", "sqlite", "ours", "sqlite3", 1.0),
    Target("w1", "redis", "ours", "redis-py", 1.0, concurrency=64),
    Target("w1", "redis", "ours", "aiogram", 2.0, concurrency=64),
    Target("w1", "postgres", "ours", "asyncpg", 1.0),
    Target("w3", "redis", "ours-distributed", "aiogram-isolated", 2.0, no_lost=True),
    *w2_targets(W2_FULL),
]
"""The issue's throughput targets; W1's Redis targets are stated at concurrency 64, the others at every concurrency.

W2's other target, ours' cost at 5,000 messages against 50, is a row's own (``Row.target``).
"""

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
GroupMeasure = Callable[[list[Row], str], Awaitable[None]]
"""Fills in fresh copies of several planned rows measured together (one subject at several sizes)."""


async def in_rounds(plan: list[tuple[Row, Measure]], rounds: int) -> list[Row]:
    """Measure each planned row ``rounds`` times, rotating the order each round; keep each one's median round.

    A row that failed in any round is reported with that failure. Every
    round's throughput is kept in ``Row.round_ops_per_s``.
    """

    def alone(measure: Measure) -> GroupMeasure:
        async def run(rows: list[Row], tag: str) -> None:
            await measure(rows[0], tag)

        return run

    grouped = await in_rounds_grouped([([row], alone(measure)) for row, measure in plan], rounds)
    return [rows[0] for rows in grouped]


async def in_rounds_grouped(plan: list[tuple[list[Row], GroupMeasure]], rounds: int) -> list[list[Row]]:
    """:func:`in_rounds` for groups of rows that one call measures together; each row keeps its own median round."""
    trials: list[list[list[Row]]] = [[] for _ in plan]
    for number in range(rounds):
        shift = number % len(plan) if plan else 0
        for index in [*range(shift, len(plan)), *range(shift)]:
            templates, measure = plan[index]
            rows = [replace(template, round_ops_per_s=[]) for template in templates]
            await measure(rows, f" (round {number + 1}/{rounds})" if rounds > 1 else "")
            trials[index].append(rows)
    chosen: list[list[Row]] = []
    for (templates, _), rounds_rows in zip(plan, trials, strict=True):
        picks: list[Row] = []
        for position in range(len(templates)):
            rows = [round_rows[position] for round_rows in rounds_rows]
            failed = [row for row in rows if row.status != "ok"]
            pick = failed[0] if failed else sorted(rows, key=lambda row: row.ops_per_s)[len(rows) // 2]
            pick.round_ops_per_s = [row.ops_per_s for row in rows]
            picks.append(pick)
        chosen.append(picks)
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


# -- W1 at scale -----------------------------------------------------------------------------------

W1S_BACKENDS = ("sqlite", "redis", "postgres")
W1S_MIN_RATIO = 0.8
"""Ours' W1 throughput with ``config.scale`` stored sessions must be at least this times its throughput with
``config.scale_small``."""
W1S_SLICES = 5
"""The two sizes' streams are timed in this many alternating slices."""


@dataclass
class ScaleRow(Row):
    """A W1s row: ours on a store prefilled with ``sessions`` sessions."""

    sessions: int = 0
    """Sessions the store was prefilled with, in bulk."""
    users: int = 0
    """Prefilled sessions the timed updates go to (drawn from all of them, seeded)."""
    stored: int | None = None
    """Records counted in the database after the prefill, before any update."""
    prefill_s: float | None = None
    """Seconds the bulk prefill took, until the store was ready (SQLite checkpoint, PostgreSQL VACUUM)."""
    scale_ratio: float | None = None
    """This row's throughput over the same concurrency's at the smallest size, both measured in this run;
    ``None`` at the smallest size or when either did not run."""


def scale_subject(sessions: int) -> str:
    """The row subject of ours on a store of ``sessions`` sessions, e.g. ``ours@1000000``."""
    return f"ours@{sessions}"


def w1s_session(keep: int) -> JsonDict:
    """A prefilled session: what W1 leaves after ``keep`` updates (count and notes)."""
    session: JsonDict = {}
    for n in range(1, keep + 1):
        apply_update(session, f"note {n}", keep)
    return session


def w1s_updates(config: BenchConfig, sessions: int) -> tuple[list[Update], list[int]]:
    """W1's update stream on a store of ``sessions`` sessions, and the users it goes to.

    ``config.updates`` updates spread evenly over ``min(config.users,
    config.scale_small)`` users, drawn (seeded) from all the prefilled keys, so
    in a large store their records lie spread over it. Every size gets the
    same stream: update ``n`` goes to the same position in its user list.
    """
    users = min(config.users, config.scale_small, sessions)
    chosen = [FIRST_KEY + index for index in random.Random(config.seed).sample(range(sessions), users)]
    order = [n % users for n in range(config.updates)]
    random.Random(config.seed).shuffle(order)
    return [make_update(n + 1, chosen[position]) for n, position in enumerate(order)], chosen


PrefillCheck = Callable[[BaseSessionStore, StoreSpec, int], Awaitable[None]]
"""Called after each prefill, before any update: ``(store, where it lives, sessions prefilled)``."""


@dataclass(frozen=True)
class ScaleSpace:
    """One prefilled store of W1s, with the update stream it is timed on and the users that stream goes to."""

    subject: Ours
    updates: list[Update]
    users: list[int]


async def _measure_w1s(spaces: list[ScaleSpace], rows: list[Row], tag: str, slices: int, progress: Progress) -> None:
    """Time the stream of every space at ``rows[0].concurrency``, in ``slices`` alternating slices.

    In each slice every store runs its share of its stream, the stores' order
    alternating from one slice to the next, so both sizes see the same machine
    conditions; each row's timing is the sum of its slices.
    """
    concurrency = rows[0].concurrency
    try:
        # Reading the counters also reads every user's record once before the clock starts.
        befores = [await space.subject.counts(space.users) for space in spaces]
        handlers = [space.subject.handler() for space in spaces]
        warm = [make_update(n, WARM_USER + n % concurrency) for n in range(max(100, 2 * concurrency))]
        for handle in handlers:
            await run_queue(handle, warm, concurrency)
        parts: list[list[Timing]] = [[] for _ in spaces]
        label = f"W1s {rows[0].backend} {'+'.join(row.subject for row in rows)} c={concurrency}{tag}"
        async with progress.track(label, sum(len(space.updates) for space in spaces)) as meter:
            for number in range(slices):
                order = list(range(len(spaces)))
                for index in order if number % 2 == 0 else order[::-1]:
                    updates = spaces[index].updates
                    part = updates[len(updates) * number // slices : len(updates) * (number + 1) // slices]
                    parts[index].append(await run_queue(handlers[index], part, concurrency, meter))
        for row, space, before, timings in zip(rows, spaces, befores, parts, strict=True):
            timing = Timing(
                sum(t.ops for t in timings), sum(t.seconds for t in timings), [x for t in timings for x in t.latencies]
            )
            row.measured(timing, expected=before + len(space.updates), final=await space.subject.counts(space.users))
    except Exception as exc:
        for row in rows:
            _failed(row, exc)


def _scale_ratios(rows: list[Row], small: int, large: int) -> None:
    """Fill in ``scale_ratio`` and the target of each large row against the small row of its concurrency."""
    smalls = {row.concurrency: row for row in rows if isinstance(row, ScaleRow) and row.sessions == small}
    for row in rows:
        if not isinstance(row, ScaleRow) or row.sessions != large or row.concurrency not in smalls:
            continue
        base = smalls[row.concurrency]
        ran = row.status == base.status == "ok" and base.ops_per_s > 0
        row.scale_ratio = row.ops_per_s / base.ops_per_s if ran else None
        ratio = "" if row.scale_ratio is None else f" {row.scale_ratio:.2f}x"
        row.target = f"{large}/{small} ops/s{ratio} ≥{W1S_MIN_RATIO:.1f}x"
        row.met = None if row.scale_ratio is None else row.scale_ratio >= W1S_MIN_RATIO


async def _w1s_backend(
    config: BenchConfig, workdir: Path, backend: str, progress: Progress, check: PrefillCheck | None
) -> list[Row]:
    """Prefill a store of each size in bulk, then time W1 on both, at every concurrency; drop both stores."""
    sizes = (config.scale_small, config.scale)
    value = w1s_session(config.history)
    streams = {sessions: w1s_updates(config, sessions) for sessions in sizes}
    groups: list[list[Row]] = [
        [
            ScaleRow(
                "w1s",
                backend,
                scale_subject(sessions),
                f"{LABELS['ours']}, {sessions:,} sessions",
                True,
                concurrency,
                sessions=sessions,
                users=len(streams[sessions][1]),
            )
            for sessions in sizes
        ]
        for concurrency in config.concurrency
    ]
    rows = [row for group in groups for row in group]
    subjects: list[Ours] = []
    try:
        spaces: list[ScaleSpace] = []
        try:
            for sessions in sizes:
                subject = Ours(_recipe(config, workdir, "ours", backend))
                await subject.open()
                subjects.append(subject)
                async with progress.track(f"W1s {backend} prefill {sessions:,} sessions", sessions) as meter:
                    seconds = await prefill(subject.store, sessions, value, meter, postgres_url=config.postgres_url)
                stored = await count_records(subject.store, postgres_url=config.postgres_url)
                if check is not None:
                    await check(subject.store, subject.spec, sessions)
                for row in rows:
                    if isinstance(row, ScaleRow) and row.sessions == sessions:
                        row.stored, row.prefill_s = stored, seconds
                spaces.append(ScaleSpace(subject, *streams[sessions]))
        except Exception as exc:
            for row in rows:
                _failed(row, exc)
        else:

            async def measure(rows: list[Row], tag: str) -> None:
                await _measure_w1s(spaces, rows, tag, W1S_SLICES, progress)

            measured = await in_rounds_grouped([(group, measure) for group in groups], config.rounds)
            rows = [row for group in measured for row in group]
        _scale_ratios(rows, *sizes)
        return rows
    finally:
        for subject in subjects:
            try:
                await clear_redis(subject.store)
                await subject.close(drop=True)
            except Exception as exc:
                for row in rows:
                    _cleanup_failed(row, exc)


async def run_w1s(
    config: BenchConfig, workdir: Path, progress: Progress, *, check: PrefillCheck | None = None
) -> WorkloadReport:
    """W1 at scale: ours' W1 throughput on stores prefilled with ``scale_small`` and with ``scale`` sessions.

    ``check`` is awaited after each prefill, before the store sees an update.
    """
    report = WorkloadReport("w1s", WORKLOADS["w1s"].title)
    for backend in config.backends:
        if backend in W1S_BACKENDS:
            report.rows.extend(await _w1s_backend(config, workdir, backend, progress, check))
            continue
        row = ScaleRow("w1s", backend, "ours", LABELS["ours"], True, 0, status="n/a")
        row.note = f"n/a (W1 at scale runs on {', '.join(W1S_BACKENDS)})"
        report.rows.append(row)
    return report


# -- W2 --------------------------------------------------------------------------------------------


@dataclass
class TurnRow(Row):
    """A W2 row: one subject on conversations of one size."""

    messages: int = 0
    """Messages each conversation was prefilled with (it grows by 2 per timed turn; a forked one does not grow)."""
    cost_ratio: float | None = None
    """Time per turn (fork, page) at this size over the same subject's at the smallest size (its throughput there
    over this row's), both measured in this run; ``None`` at the smallest size or when either did not run."""

    @property
    def size(self) -> int:
        """What the row's size is counted in: messages (sessions for :class:`ListRow`)."""
        return self.messages


@dataclass
class ListRow(TurnRow):
    """A W2 ``list_sessions`` row: pages of one user's sessions (``messages`` is 0: the sessions are empty)."""

    sessions: int = 0
    """Sessions the listed user owns (created before the timed pages; the only ones in their store)."""

    @property
    def size(self) -> int:
        """The listed user's sessions."""
        return self.sessions


TurnCall = Callable[[Any, list[Message]], Awaitable[tuple[int, str]]]
T = TypeVar("T")
R = TypeVar("R")


async def run_round_robin(
    operation: Callable[[T, int], Awaitable[R]],
    items: Sequence[T],
    *,
    times: int,
    concurrency: int,
    check: Callable[[T, int, R], None] | None = None,
    meter: Meter | None = None,
) -> Timing:
    """Time ``operation(item, n)`` for ``n`` in ``range(times)`` on each item, ``concurrency`` at a time.

    As :func:`run_conversations`: items wait in one round-robin queue, so one
    item never has two calls in flight. ``check`` (untimed) sees every result
    and raises to fail the run.
    """
    queue = deque((item, 0) for item in items if times > 0)
    latencies: list[float] = []
    meter = meter or Meter()

    async def worker() -> None:
        clock, record = time.perf_counter, latencies.append
        while queue:
            item, done = queue.popleft()
            start = clock()
            result = await operation(item, done)
            record(clock() - start)
            if check is not None:
                check(item, done, result)
            if done + 1 < times:
                queue.append((item, done + 1))
            meter.done += 1

    gc.collect()
    start = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return Timing(len(latencies), time.perf_counter() - start, latencies)


async def run_conversations(
    turn: TurnCall,
    conversations: Sequence[Any],
    *,
    turns: int,
    first: int,
    window: int,
    concurrency: int,
    meter: Meter | None = None,
) -> Timing:
    """Time ``turns`` turns on each conversation, ``concurrency`` at a time, each conversation's turns in order.

    Conversations wait in one round-robin queue: a task takes the next one,
    runs one turn and puts it back at the end if it has turns left, so a
    conversation never has two turns in flight. Turn ``n`` appends exchange
    ``first + n``; every turn must read back ``window`` messages ending with the
    reply it just wrote.
    """
    queue = deque((conversation, 0) for conversation in conversations if turns > 0)
    latencies: list[float] = []
    meter = meter or Meter()

    async def worker() -> None:
        clock, record = time.perf_counter, latencies.append
        while queue:
            conversation, done = queue.popleft()
            messages = exchange(first + done)
            start = clock()
            count, newest = await turn(conversation, messages)
            record(clock() - start)
            if count != window or newest != messages[-1]["content"]:
                raise RuntimeError(
                    f"a turn read {count} messages ending with {newest[:30]!r}..., "
                    f"not the {window} ending with the reply it wrote"
                )
            if done + 1 < turns:
                queue.append((conversation, done + 1))
            meter.done += 1

    gc.collect()
    start = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return Timing(len(latencies), time.perf_counter() - start, latencies)


def _turn_recipe(config: BenchConfig, workdir: Path, kind: str, backend: str, plan: TurnPlan) -> TurnRecipe:
    return TurnRecipe(kind, backend, unique_name(), workdir, config.redis_url, config.postgres_url, window=plan.window)


async def _measure_w2(recipe: TurnRecipe, rows: list[Row], tag: str, plan: TurnPlan, progress: Progress) -> None:
    """Prefill every group of ``plan`` in one namespace, warm each conversation up, then time the turns."""
    subject = recipe.build()
    opened = False
    pending = list(rows)
    name = f"W2 {recipe.backend} {recipe.kind}"
    try:
        await subject.open()
        opened = True
        warm = await subject.create(0)
        await subject.append_bulk(warm, history(0, plan.window))
        await run_conversations(subject.turn, [warm], turns=5, first=plan.window, window=plan.window, concurrency=1)
        groups: list[list[Any]] = []
        number = 1
        total = sum(group.conversations * group.messages for group in plan.groups)
        async with progress.track(f"{name} prefill{tag}", total) as meter:
            for group in plan.groups:
                conversations = []
                messages = history(0, group.messages)
                for _ in range(group.conversations):
                    conversation = await subject.create(number)
                    number += 1
                    for start in range(0, group.messages, plan.batch):
                        batch = messages[start : start + plan.batch]
                        await subject.append_bulk(conversation, batch)
                        meter.done += len(batch)
                    conversations.append(conversation)
                groups.append(conversations)
            # One untimed turn on every conversation, so that neither size pays first touches in its timing.
            for group, conversations in zip(plan.groups, groups, strict=True):
                await run_conversations(
                    subject.turn,
                    conversations,
                    turns=1,
                    first=group.messages,
                    window=plan.window,
                    concurrency=plan.concurrency,
                )
        turns = sum(group.conversations * group.turns for group in plan.groups)
        async with progress.track(f"{name} turns c={plan.concurrency}{tag}", turns) as meter:
            timings = await _interleaved_turns(subject, plan, groups, meter)
        for row, group, conversations, timing in zip(rows, plan.groups, groups, timings, strict=True):
            final = 0
            for conversation in conversations:
                final += await subject.stored(conversation)
            expected = group.conversations * (group.messages + 2 * (1 + group.turns))
            row.measured(timing, expected=expected, final=final)
            pending.remove(row)
    except Exception as exc:
        for row in pending:
            _failed(row, exc)
    finally:
        if opened:
            try:
                await subject.close(drop=True)
            except Exception as exc:
                for row in rows:
                    _cleanup_failed(row, exc)


async def _interleaved_turns(
    subject: TurnSubject[Any], plan: TurnPlan, groups: list[list[Any]], meter: Meter
) -> list[Timing]:
    """Time every group's turns in interleaved slices, so that all sizes see the same machine conditions.

    There are as many slices as the fewest turns of any group; in each, every
    group runs its share of turns on all its conversations, the groups' order
    alternating from one slice to the next. Each group's timing is the sum of
    its slices.
    """

    def turns_of(index: int) -> SliceRun:
        group = plan.groups[index]

        async def run(turns: int, done: int) -> Timing:
            return await run_conversations(
                subject.turn,
                groups[index],
                turns=turns,
                first=group.messages + 1 + done,
                window=plan.window,
                concurrency=plan.concurrency,
                meter=meter,
            )

        return run

    counts = [group.turns for group in plan.groups]
    return await interleaved([turns_of(index) for index in range(len(counts))], counts, max(1, min(counts)))


SliceRun = Callable[[int, int], Awaitable[Timing]]
"""Times ``count`` more operations of one size, ``done`` of them having run before: ``run(count, done)``."""


async def interleaved(runs: Sequence[SliceRun], counts: Sequence[int], slices: int) -> list[Timing]:
    """Run ``counts[i]`` operations of each size through ``runs[i]`` in ``slices`` alternating slices.

    In each slice every size runs its share, the sizes' order alternating
    from one slice to the next, so that all see the same machine conditions.
    Each size's timing is the sum of its slices.
    """
    parts: list[list[Timing]] = [[] for _ in runs]
    done = [0] * len(runs)
    for number in range(slices):
        order = list(range(len(runs)))
        for index in order if number % 2 == 0 else order[::-1]:
            count = counts[index] * (number + 1) // slices - counts[index] * number // slices
            if count == 0:
                continue
            parts[index].append(await runs[index](count, done[index]))
            done[index] += count
    return [
        Timing(sum(t.ops for t in timings), sum(t.seconds for t in timings), [x for t in timings for x in t.latencies])
        for timings in parts
    ]


@dataclass
class _Parent:
    """A session W2 forks: its owner, its newest message, and the forks made of it."""

    id: str
    user: str
    newest: int
    content: str
    forks: list[str]


async def _open_manager(recipe: TurnRecipe) -> tuple[StoreSpec, BaseSessionStore, Any]:
    from sessionware.agents import SessionManager

    spec = recipe.store_spec()
    store = spec.open()
    return spec, store, SessionManager(store)


async def _close_stores(opened: list[tuple[StoreSpec, BaseSessionStore]], rows: list[Row]) -> None:
    for spec, store in opened:
        try:
            await spec.drop(store)
        except Exception as exc:
            for row in rows:
                _cleanup_failed(row, exc)


async def _measure_forks(recipe: TurnRecipe, rows: list[Row], tag: str, plan: TurnPlan, progress: Progress) -> None:
    """Fill sessions of every fork size of ``plan`` in one namespace, fork each once untimed, then time the forks.

    Every fork is at the parent's newest message; afterwards each fork must
    hold that many messages, ending with the parent's newest (``lost`` counts
    the messages of forks that do not).
    """
    opened: list[tuple[StoreSpec, BaseSessionStore]] = []
    pending = list(rows)
    name = f"W2 {recipe.backend} {W2_FORK}"
    try:
        spec, store, manager = await _open_manager(recipe)
        opened.append((spec, store))

        async def make(number: int, messages: list[Message], meter: Meter) -> _Parent:
            user = f"user-{number}"
            session = await manager.create_session(user)
            for start in range(0, len(messages), plan.batch):
                batch = messages[start : start + plan.batch]
                added = await manager.add_messages(session.id, batch, user_id=user)
                meter.done += len(batch)
            return _Parent(session.id, user, added[-1].seq, messages[-1]["content"], [])

        async def fork(parent: _Parent, _: int) -> Any:
            return await manager.fork_session(parent.id, at=parent.newest, user_id=parent.user)

        def check(parent: _Parent, _: int, session: Any) -> None:
            origin = {"session_id": parent.id, "seq": parent.newest}
            if session.message_count != parent.newest or session.forked_from != origin:
                raise RuntimeError(f"a fork of {parent.id} at {parent.newest} is {session!r:.200}")
            parent.forks.append(session.id)

        async with progress.track(f"{name} warm-up{tag}", plan.window) as meter:
            warm = await make(0, history(0, plan.window), meter)
        await run_round_robin(fork, [warm], times=5, concurrency=1, check=check)
        parents: list[list[_Parent]] = []
        number = 1
        total = sum(group.sessions * group.messages for group in plan.forks)
        async with progress.track(f"{name} prefill{tag}", total) as meter:
            for group in plan.forks:
                messages = history(0, group.messages)
                parents.append([await make(number + i, messages, meter) for i in range(group.sessions)])
                number += group.sessions
            # One untimed fork of every session, so that neither size pays first touches in its timing.
            for sessions in parents:
                await run_round_robin(fork, sessions, times=1, concurrency=plan.concurrency, check=check)

        def forks_of(sessions: list[_Parent], meter: Meter) -> SliceRun:
            async def run(count: int, done: int) -> Timing:
                return await run_round_robin(
                    fork, sessions, times=count, concurrency=plan.concurrency, check=check, meter=meter
                )

            return run

        counts = [group.forks for group in plan.forks]
        total = sum(group.sessions * group.forks for group in plan.forks)
        async with progress.track(f"{name} forks c={plan.concurrency}{tag}", total) as meter:
            runs = [forks_of(sessions, meter) for sessions in parents]
            timings = await interleaved(runs, counts, min(W2_SLICES, *counts))
        for row, group, sessions, timing in zip(rows, plan.forks, parents, timings, strict=True):
            final = 0
            for parent in sessions:
                for fork_id in parent.forks:
                    final += await _fork_holds(manager, fork_id, parent)
            expected = group.sessions * (1 + group.forks) * group.messages
            row.measured(timing, expected=expected, final=final)
            pending.remove(row)
    except Exception as exc:
        for row in pending:
            _failed(row, exc)
    finally:
        await _close_stores(opened, rows)


async def _fork_holds(manager: Any, fork_id: str, parent: _Parent) -> int:
    """How many messages fork ``fork_id`` of ``parent`` holds, read back: 0 unless it ends with the parent's newest."""
    session = await manager.get_session(fork_id, user_id=parent.user, history=1, tool_invocations=0)
    if session is None or session.message_count != parent.newest or not session.conversation_history:
        return 0
    newest = session.conversation_history[-1]
    return int(session.message_count) if (newest.seq, newest.text) == (parent.newest, parent.content) else 0


async def _measure_lists(
    recipes: list[TurnRecipe], rows: list[Row], tag: str, plan: TurnPlan, progress: Progress
) -> None:
    """Give one user the sessions of each list size of ``plan``, each user in a store of its own, then time pages.

    Each store holds only its user's sessions, so a page that costs more
    with the store's size (not only with the user's sessions) shows it too.
    The sessions are created concurrently (``plan.creators`` at a time); each
    user's first page is untimed. Every timed page must hold the user's
    newest ``plan.page`` sessions (all of them if fewer), newest first;
    afterwards paging through all of them must find every one (``lost``).
    """
    from sessionware.agents.manager import MAX_PAGE

    opened: list[tuple[StoreSpec, BaseSessionStore]] = []
    pending = list(rows)
    name = f"W2 {recipes[0].backend} {W2_LIST}"
    user = "user-list"
    try:
        managers: list[Any] = []
        for recipe in recipes:
            spec, store, manager = await _open_manager(recipe)
            opened.append((spec, store))
            managers.append(manager)
        total = sum(group.sessions for group in plan.lists)
        async with progress.track(f"{name} prefill {total:,} sessions{tag}", total) as meter:
            for manager, group in zip(managers, plan.lists, strict=True):

                async def create(_: int, manager: Any = manager) -> None:
                    await manager.create_session(user)

                await run_queue(create, range(group.sessions), plan.creators, meter)

        def page_of(manager: Any) -> Callable[[object, int], Awaitable[Any]]:
            async def page(_: object, __: int) -> Any:
                return await manager.list_sessions(user, limit=plan.page)

            return page

        def pages_of(manager: Any, group: ListGroup, meter: Meter) -> SliceRun:
            expect = min(plan.page, group.sessions)

            def check(_: object, __: int, result: Any) -> None:
                created = [session.created_at for session in result.sessions]
                if len(created) != expect or created != sorted(created, reverse=True):
                    raise RuntimeError(
                        f"a page of {group.sessions} sessions held {len(created)}, not the newest {expect}"
                    )
                if any(session.user_id != user for session in result.sessions):
                    raise RuntimeError("a page held another user's session")

            async def run(count: int, done: int) -> Timing:
                return await run_round_robin(
                    page_of(manager), range(count), times=1, concurrency=plan.concurrency, check=check, meter=meter
                )

            return run

        for manager in managers:
            await page_of(manager)(None, 0)
        counts = [group.pages for group in plan.lists]
        async with progress.track(f"{name} pages c={plan.concurrency}{tag}", sum(counts)) as meter:
            runs = [pages_of(manager, group, meter) for manager, group in zip(managers, plan.lists, strict=True)]
            timings = await interleaved(runs, counts, min(W2_SLICES, *counts))
        for row, group, manager, timing in zip(rows, plan.lists, managers, timings, strict=True):
            found: set[str] = set()
            cursor: str | None = None
            while True:
                result = await manager.list_sessions(user, limit=MAX_PAGE, cursor=cursor)
                found.update(session.id for session in result.sessions)
                cursor = result.next_cursor
                if cursor is None:
                    break
            row.measured(timing, expected=group.sessions, final=len(found))
            pending.remove(row)
    except Exception as exc:
        for row in pending:
            _failed(row, exc)
    finally:
        await _close_stores(opened, rows)


def _turn_costs(rows: list[Row]) -> None:
    """Fill in ``cost_ratio`` of one subject's rows (one per group, in order), and ours' cost target."""
    smallest = rows[0]
    for row in rows[1:]:
        if not isinstance(row, TurnRow) or not isinstance(smallest, TurnRow):
            continue
        ran = row.status == smallest.status == "ok" and row.ops_per_s > 0
        row.cost_ratio = smallest.ops_per_s / row.ops_per_s if ran else None
        cost = "" if row.cost_ratio is None else f" {row.cost_ratio:.2f}x"
        row.target = f"{row.size}/{smallest.size} cost{cost}"
        if row.ours:
            row.target += f" ≤{W2_COST_LIMIT:.1f}x"
            row.met = None if row.cost_ratio is None else row.cost_ratio <= W2_COST_LIMIT


def _manager_entries(
    config: BenchConfig, workdir: Path, backend: str, plan: TurnPlan, progress: Progress
) -> list[tuple[list[Row], GroupMeasure]]:
    """The fork and list rows of ``backend`` with what measures them: where ours runs and ``plan`` has their sizes."""
    if "ours" not in W2_OURS[backend]:
        return []
    entries: list[tuple[list[Row], GroupMeasure]] = []
    if plan.forks:
        forks: list[Row] = [
            TurnRow(
                "w2",
                backend,
                turn_subject(W2_FORK, group.messages),
                f"{W2_LABELS[W2_FORK]}, {group.messages:,} msgs",
                True,
                plan.concurrency,
                messages=group.messages,
            )
            for group in plan.forks
        ]

        async def fork(rows: list[Row], tag: str) -> None:
            await _measure_forks(_turn_recipe(config, workdir, W2_FORK, backend, plan), rows, tag, plan, progress)

        entries.append((forks, fork))
    if plan.lists:
        lists: list[Row] = [
            ListRow(
                "w2",
                backend,
                turn_subject(W2_LIST, group.sessions),
                f"{W2_LABELS[W2_LIST]} limit={plan.page}, {group.sessions:,} sessions",
                True,
                plan.concurrency,
                sessions=group.sessions,
            )
            for group in plan.lists
        ]

        async def page(rows: list[Row], tag: str) -> None:
            recipes = [_turn_recipe(config, workdir, W2_LIST, backend, plan) for _ in plan.lists]
            await _measure_lists(recipes, rows, tag, plan, progress)

        entries.append((lists, page))
    return entries


async def run_w2(
    config: BenchConfig, workdir: Path, progress: Progress, plan: TurnPlan | None = None
) -> WorkloadReport:
    """W2: agent turns (append 2 messages, read the last 20) on short and on long conversations.

    ``plan`` defaults to :data:`W2_FULL`, or :data:`W2_QUICK` for a ``--quick`` configuration.
    """
    plan = plan or (W2_QUICK if config.quick else W2_FULL)
    report = WorkloadReport("w2", WORKLOADS["w2"].title)
    for backend in config.backends:
        entries: list[tuple[list[Row], GroupMeasure]] = []
        for kind in (*W2_OURS[backend], *W2_BASELINES[backend]):
            rows: list[Row] = [
                TurnRow(
                    "w2",
                    backend,
                    turn_subject(kind, group.messages),
                    f"{W2_LABELS[kind]}, {group.messages:,} msgs",
                    kind in W2_PEERS,
                    plan.concurrency,
                    messages=group.messages,
                )
                for group in plan.groups
            ]

            async def measure(rows: list[Row], tag: str, kind: str = kind, backend: str = backend) -> None:
                await _measure_w2(_turn_recipe(config, workdir, kind, backend, plan), rows, tag, plan, progress)

            entries.append((rows, measure))
        turned = len(entries)
        entries += _manager_entries(config, workdir, backend, plan, progress)
        measured = await in_rounds_grouped(entries, config.rounds)
        for rows in measured:
            _turn_costs(rows)
        turn_rows = measured[:turned]
        report.rows.extend(
            row for position in range(len(plan.groups)) for rows in turn_rows for row in [rows[position]]
        )
        report.rows.extend(row for rows in measured[turned:] for row in rows)
    pairs = [
        (turn_subject(ours, group.messages), turn_subject(kind, group.messages))
        for backend, kinds in W2_BASELINES.items()
        for ours in W2_OURS[backend]
        for kind in kinds
        if _w2_compared(ours, kind)
        for group in plan.groups
    ]
    report.ratios = compute_ratios(report, pairs, w2_targets(plan))
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
    "w1s": Workload("w1s", "bot update at scale: W1 on a small and on a large prefilled store", run_w1s),
    "w2": Workload("w2", "agent turn: append 2 messages, read the last 20, at 50 and 5,000 messages", run_w2),
    "w3": Workload("w3", "lost updates: tasks x read-modify-write of one session", run_w3),
}
"""Workloads that can run, in order. A new one adds an entry here and its rows use the same report."""

PENDING: dict[str, str] = {}
"""Workloads named by the issue that cannot run yet, with the reason shown in reports (none now)."""
