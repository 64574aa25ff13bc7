"""The benchmark harness on a tiny configuration: report structure, lost-update counts, ratios from this run.

No timing assertions: only that every number in the report is consistent with
the others and with what was stored.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from benchmarks.harness import BenchConfig, config_from_args, main, parser, run_bench
from benchmarks.harness.bulk import bulk_key
from benchmarks.harness.measure import Timing
from benchmarks.harness.output import LineProgress, NoProgress, progress_for, render
from benchmarks.harness.report import Report, Row, WorkloadReport
from benchmarks.harness.spaces import StoreSpec
from benchmarks.harness.turns import Message, exchange, history
from benchmarks.harness.workloads import (
    LABELS,
    PENDING,
    W1_SUBJECTS,
    W2_BASELINES,
    W2_FORK,
    W2_LABELS,
    W2_LIST,
    W2_MIN_RATIOS,
    W2_OURS,
    W2_QUICK,
    ForkGroup,
    ListGroup,
    ListRow,
    ScaleRow,
    TurnGroup,
    TurnPlan,
    TurnRow,
    interleaved,
    run_conversations,
    run_round_robin,
    run_w1s,
    run_w2,
    w1s_session,
)

from sessionware.store import BaseSessionStore, LockingStore
from sessionware.stores.sql.sqlite import SQLiteSessionStore

from .conftest import POSTGRES_URL, REDIS_URL, require_server


def tiny(**options: Any) -> BenchConfig:
    """A configuration small enough for a test: 20 users, 100 updates, 5 tasks x 4 increments, 2 processes."""
    sizes: dict[str, Any] = {"users": 20, "updates": 100, "concurrency": (1, 8), "tasks": 5, "increments": 4}
    options.setdefault("workloads", ("w1", "w3"))
    return BenchConfig(**sizes, processes=2, **options)


def rows_by(workload: WorkloadReport) -> dict[tuple[str, str, int], Row]:
    return {(row.backend, row.subject, row.concurrency): row for row in workload.rows}


async def sqlite_has_leases(tmp_path: Path) -> bool:
    store = StoreSpec("sqlite", "probe", tmp_path, "", "").open()
    try:
        return isinstance(store, LockingStore)
    finally:
        await store.close()


async def test_tiny_run_on_memory_and_sqlite(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tiny(backends=("memory", "sqlite"), workdir=workdir)
    report = await run_bench(config)

    assert [w.id for w in report.workloads] == ["w1", "w3"]
    assert report.errors == []
    assert report.config["users"] == 20
    assert report.machine["packages"]["sessionware"]

    w1, w3 = report.workloads
    rows = rows_by(w1)
    expected_keys = {(b, s, c) for b in ("memory", "sqlite") for s in W1_SUBJECTS[b] for c in (1, 8)}
    assert set(rows) == expected_keys
    for row in w1.rows:
        assert row.status == "ok", row.note
        assert row.label == LABELS[row.subject]
        assert row.ops == row.expected == 100
        # None of these subjects can interleave two updates of one user, so nothing may be lost.
        assert (row.final, row.lost) == (100, 0)
        assert row.ops_per_s == pytest.approx(row.ops / row.seconds)
        assert 0 < row.p50_ms <= row.p99_ms
        assert row.round_ops_per_s == [row.ops_per_s]

    # One ratio per baseline row, computed from the two rows of this very run.
    baselines = [row for row in w1.rows if not row.ours]
    assert len(w1.ratios) == len(baselines)
    for ratio in w1.ratios:
        ours = rows[(ratio.backend, "ours", ratio.concurrency)]
        base = rows[(ratio.backend, ratio.baseline, ratio.concurrency)]
        assert ratio.ratio == ours.ops_per_s / base.ops_per_s
        assert ratio.min_ratio == 1.0
        assert ratio.met == (ratio.ratio >= 1.0)

    w3_rows = {(row.backend, row.subject): row for row in w3.rows}
    assert set(w3_rows) == {(b, s) for b in ("memory", "sqlite") for s in ("ours", "ours-distributed")}
    for backend in ("memory", "sqlite"):
        local = w3_rows[(backend, "ours")]
        assert (local.status, local.expected, local.final, local.lost, local.met) == ("ok", 20, 20, 0, True)
        assert (local.concurrency, local.processes) == (5, 1)
    assert (w3_rows[("memory", "ours-distributed")].status, w3_rows[("memory", "ours-distributed")].note) == (
        "n/a",
        "n/a (in-process store)",
    )
    distributed = w3_rows[("sqlite", "ours-distributed")]
    if await sqlite_has_leases(tmp_path):
        assert (distributed.status, distributed.processes, distributed.lost) == ("ok", 2, 0)
    else:
        assert (distributed.status, distributed.note) == ("n/a", "n/a (no leases)")

    # Every subject removed its namespace: no database file is left behind.
    assert list(workdir.iterdir()) == []

    path = tmp_path / "report.json"
    report.write_json(path)
    data = json.loads(path.read_text())
    assert data["schema"] == 1
    assert {"date", "machine", "config", "workloads", "pending"} <= set(data)
    first = data["workloads"][0]["rows"][0]
    assert {"backend", "subject", "concurrency", "ops_per_s", "p50_ms", "p99_ms", "lost", "status"} <= set(first)
    assert data["workloads"][0]["ratios"][0]["ratio"] == w1.ratios[0].ratio


async def test_rounds_keep_every_round_and_report_the_median(tmp_path: Path) -> None:
    config = tiny(backends=("memory",), workloads=("w1",), workdir=tmp_path, rounds=3)
    report = await run_bench(config)
    for row in report.workloads[0].rows:
        assert len(row.round_ops_per_s) == 3
        assert row.ops_per_s == sorted(row.round_ops_per_s)[1]


@pytest.mark.slow  # the whole quick W1 and W2 on memory: minutes on two cores
def test_command_writes_plain_tables_and_json(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "report.json"
    argv = ["--quick", "--backends", "memory", "--workloads", "w1,w2", "--json", str(path)]
    assert main(argv, out=out, err=err) == 0

    text = out.getvalue()
    assert "W1 bot update" in text
    assert "dict + stdlib json (raw)" in text
    assert "W2 agent turn" in text
    assert "sessionware SessionManager, 5,000 msgs" in text
    assert "not measured" not in text
    header = next(line for line in text.splitlines() if line.startswith("backend"))
    assert header.split()[:4] == ["backend", "subject", "conc", "ops/s"]
    assert "W1 memory ours c=64: 2000/2000" in err.getvalue()  # one progress line per run when piped
    prefill = sum(group.conversations * group.messages for group in W2_QUICK.groups)
    assert f"W2 memory ours prefill: {prefill}/{prefill}" in err.getvalue()

    data = json.loads(path.read_text())
    assert data["config"]["quick"] is True
    assert data["config"]["updates"] == 2000
    assert data["pending"] == PENDING == {}
    assert {row["concurrency"] for row in data["workloads"][0]["rows"]} == {1, 64}
    w2_rows = data["workloads"][1]["rows"]
    kinds = (*W2_OURS["memory"], *W2_BASELINES["memory"])
    assert [(row["subject"], row["messages"]) for row in w2_rows] == [
        *((f"{kind}@{size}", size) for size in (50, 5000) for kind in kinds),
        ("ours-fork@50", 50),
        ("ours-fork@5000", 5000),
        ("ours-list@10", 0),
        ("ours-list@10000", 0),
    ]
    assert [row["sessions"] for row in w2_rows[-2:]] == [10, 10_000]
    assert [row["lost"] for row in w2_rows] == [0] * len(w2_rows)
    for small, large in [(w2_rows[0], w2_rows[len(kinds)]), (w2_rows[-4], w2_rows[-3]), (w2_rows[-2], w2_rows[-1])]:
        assert large["cost_ratio"] == small["ops_per_s"] / large["ops_per_s"]
    assert "sessionware SessionManager.fork_session, 5,000 msgs" in text
    assert "sessionware SessionManager.list_sessions limit=10, 10,000 sessions" in text
    assert "10000/10 cost" in text


# -- W2 --------------------------------------------------------------------------------------------

W2_TINY = TurnPlan(
    (TurnGroup(24, 5, 2), TurnGroup(60, 3, 4)),
    concurrency=4,
    batch=16,
    forks=(ForkGroup(24, 3, 2), ForkGroup(60, 2, 3)),
    lists=(ListGroup(3, 4), ListGroup(45, 6)),
    page=10,
    creators=4,
)
"""Two sizes (both above the 20-message window), prefilled in several batches, with fewer conversations than tasks;
forks of both sizes, and pages of a user with fewer sessions than a page holds and of one with several pages."""
MANAGER_ROWS = ["ours-fork@24", "ours-fork@60", "ours-list@3", "ours-list@45"]
"""The manager's own rows of ``W2_TINY`` on every backend, after the turn rows."""


async def test_tiny_w2_on_memory_and_sqlite(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tiny(backends=("memory", "sqlite"), workloads=("w2",), workdir=workdir)
    w2 = await run_w2(config, workdir, NoProgress(), W2_TINY)

    sizes = [group.messages for group in W2_TINY.groups]
    kinds = {backend: (*W2_OURS[backend], *W2_BASELINES[backend]) for backend in ("memory", "sqlite")}
    # Rows come size by size within each backend: every subject at 24 messages, then every one at 60,
    # then the manager's forks at both sizes and its pages of both users.
    assert [(row.backend, row.subject) for row in w2.rows] == [
        (backend, subject)
        for backend in ("memory", "sqlite")
        for subject in [*(f"{kind}@{size}" for size in sizes for kind in kinds[backend]), *MANAGER_ROWS]
    ]
    have_agents = importlib.util.find_spec("agents") is not None
    have_frameworks = {
        "openai": have_agents,
        "pydantic": importlib.util.find_spec("pydantic_ai") is not None,
        "adk": importlib.util.find_spec("google.adk") is not None,
    }
    rows = {(row.backend, row.subject): row for row in w2.rows}
    for row in w2.rows:
        assert isinstance(row, TurnRow)
        kind, _, size = row.subject.partition("@")
        if kind in (W2_FORK, W2_LIST):
            continue
        group = next(g for g in W2_TINY.groups if g.messages == int(size))
        is_ours = kind in W2_OURS[row.backend]
        assert (row.workload, row.ours, row.messages, row.concurrency) == ("w2", is_ours, group.messages, 4)
        assert row.label == f"{W2_LABELS[kind]}, {group.messages} msgs"
        if any(name in kind and not have for name, have in have_frameworks.items()):
            assert (row.status, row.note.split(":")[0]) == ("error", "ModuleNotFoundError")
            continue
        assert row.status == "ok", row.note
        assert row.ops == group.conversations * group.turns
        # Every message prefilled or appended by a turn (one untimed warm-up turn each) is read back: nothing lost.
        assert row.expected == row.final == group.conversations * (group.messages + 2 * (group.turns + 1))
        assert row.lost == 0
        assert row.ops_per_s == pytest.approx(row.ops / row.seconds)
        assert 0 < row.p50_ms <= row.p99_ms
        assert row.round_ops_per_s == [row.ops_per_s]

    # Each subject's cost at 60 messages against its own cost at 24, from the two rows of this run.
    for backend, subjects in kinds.items():
        for kind in subjects:
            small, large = rows[(backend, f"{kind}@24")], rows[(backend, f"{kind}@60")]
            assert isinstance(small, TurnRow)
            assert isinstance(large, TurnRow)
            assert small.cost_ratio is None
            if large.status != "ok":
                assert large.cost_ratio is None
                continue
            assert large.cost_ratio == small.ops_per_s / large.ops_per_s
            assert large.target.startswith(f"60/24 cost {large.cost_ratio:.2f}x")
            if kind in W2_OURS[backend]:
                assert large.target.endswith("≤1.2x")
                assert large.met == (large.cost_ratio <= 1.2)
            else:
                assert large.met is None

    # Forks of 24- and 60-message sessions at their newest message, and pages of the users with 3 and 45
    # sessions: each row timed every operation, each fork holds its parent's messages, each user's sessions
    # are all found; the larger row's cost is against the smaller's of this run, with ours' target.
    for backend in ("memory", "sqlite"):
        for fork, fork_group in zip(MANAGER_ROWS[:2], W2_TINY.forks, strict=True):
            row = rows[(backend, fork)]
            assert (row.status, row.note, row.ours, row.concurrency) == ("ok", "", True, 4)
            assert row.label == f"{W2_LABELS[W2_FORK]}, {fork_group.messages} msgs"
            assert isinstance(row, TurnRow)
            assert row.messages == fork_group.messages
            assert row.ops == fork_group.sessions * fork_group.forks
            assert row.expected == row.final == fork_group.sessions * (1 + fork_group.forks) * fork_group.messages
        for listed, list_group in zip(MANAGER_ROWS[2:], W2_TINY.lists, strict=True):
            row = rows[(backend, listed)]
            assert (row.status, row.note, row.ours, row.concurrency) == ("ok", "", True, 4)
            assert row.label == f"{W2_LABELS[W2_LIST]} limit=10, {list_group.sessions} sessions"
            assert isinstance(row, ListRow)
            assert (row.sessions, row.messages) == (list_group.sessions, 0)
            assert row.ops == list_group.pages
            assert row.expected == row.final == list_group.sessions
        for small_subject, large_subject, target in [
            ("ours-fork@24", "ours-fork@60", "60/24 cost"),
            ("ours-list@3", "ours-list@45", "45/3 cost"),
        ]:
            small, large = rows[(backend, small_subject)], rows[(backend, large_subject)]
            assert isinstance(small, TurnRow)
            assert isinstance(large, TurnRow)
            assert (small.cost_ratio, small.target, small.met) == (None, "", None)
            assert large.cost_ratio == small.ops_per_s / large.ops_per_s
            assert large.target == f"{target} {large.cost_ratio:.2f}x ≤1.2x"
            assert large.met == (large.cost_ratio <= 1.2)

    # Ratios pair ours with baselines of the same backend at the same size only: the manager with the
    # openai-agents sessions and the raw clients, each adapter over ours with its framework's own store.
    assert sorted((r.backend, r.ours, r.baseline) for r in w2.ratios) == sorted(
        [("sqlite", f"ours@{size}", f"{kind}@{size}") for size in sizes for kind in ("openai-sqlite", "sqlite3")]
        + [("sqlite", f"ours-openai@{size}", f"openai-sqlite@{size}") for size in sizes]
        + [("sqlite", f"ours-adk@{size}", f"adk-sqlite@{size}") for size in sizes]
        + [("memory", f"ours-pydantic@{size}", f"pydantic-memory@{size}") for size in sizes]
        + [("memory", f"ours-pydantic-store@{size}", f"pydantic-memory@{size}") for size in sizes]
        + [("memory", f"ours-adk@{size}", f"adk-memory@{size}") for size in sizes]
    )
    for ratio in w2.ratios:
        ours, base = rows[(ratio.backend, ratio.ours)], rows[(ratio.backend, ratio.baseline)]
        kind = ratio.baseline.partition("@")[0]
        assert ratio.min_ratio == W2_MIN_RATIOS.get(kind)
        if base.status != "ok":
            assert (ratio.ratio, ratio.met) == (None, None)
            continue
        assert ratio.ratio == ours.ops_per_s / base.ops_per_s
        assert ratio.met == (None if ratio.min_ratio is None else ratio.ratio >= ratio.min_ratio)

    # Every subject removed its namespace: no database file is left behind.
    assert list(workdir.iterdir()) == []

    report = Report(date="d", machine={"cpu_count": 2, "cpu": "c", "python": "3"}, config={})
    report.workloads.append(w2)
    out = io.StringIO()
    render(report, out, rich=False)
    text = out.getvalue()
    assert text.startswith("W2 agent turn")
    assert "sqlite3 row per message (raw), 60 msgs" in text
    assert "60/24 cost" in text
    assert "sessionware SessionManager.list_sessions limit=10, 45 sessions" in text
    assert "45/3 cost" in text
    data = report.to_dict()["workloads"][0]
    n = len(kinds["memory"])
    assert [row["messages"] for row in data["rows"]][: 2 * n] == [24] * n + [60] * n


async def test_w2_on_an_unreachable_server_gives_error_rows(tmp_path: Path) -> None:
    config = tiny(backends=("postgres",), postgres_url="postgresql://postgres@127.0.0.1:1/test")
    w2 = await run_w2(config, tmp_path, NoProgress(), W2_TINY)
    assert [row.subject for row in w2.rows] == [
        *(
            f"{kind}@{group.messages}"
            for group in W2_TINY.groups
            for kind in (*W2_OURS["postgres"], *W2_BASELINES["postgres"])
        ),
        *MANAGER_ROWS,
    ]
    for row in w2.rows:
        assert row.status == "error"
        assert row.note
        assert isinstance(row, TurnRow)
        assert row.cost_ratio is None
    assert w2.rows[0].note.startswith("StoreUnavailableError: ")
    ours_large = next(row for row in w2.rows if row.subject == "ours@60")
    assert (ours_large.target, ours_large.met) == ("60/24 cost ≤1.2x", None)
    fork_large, list_large = (
        next(row for row in w2.rows if row.subject == s) for s in ("ours-fork@60", "ours-list@45")
    )
    assert (fork_large.target, fork_large.met) == ("60/24 cost ≤1.2x", None)
    assert (list_large.target, list_large.met) == ("45/3 cost ≤1.2x", None)
    assert all(row.note.startswith("StoreUnavailableError: ") for row in w2.rows if row.subject in MANAGER_ROWS)
    assert len(w2.ratios) == 6  # ours with both baselines, the openai-agents session over ours with the SDK's
    assert all(ratio.ratio is None and ratio.met is None and ratio.note for ratio in w2.ratios)


async def test_conversation_turns_run_in_order_and_never_overlap() -> None:
    in_flight: set[str] = set()
    seen: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    most = 0

    async def turn(conversation: str, messages: list[Message]) -> tuple[int, str]:
        nonlocal most
        assert conversation not in in_flight  # two turns of one conversation at once
        in_flight.add(conversation)
        most = max(most, len(in_flight))
        await asyncio.sleep(0)
        seen[conversation].append(messages[0]["content"].partition(":")[0])
        in_flight.discard(conversation)
        return 20, messages[-1]["content"]

    timing = await run_conversations(turn, ["a", "b", "c"], turns=4, first=10, window=20, concurrency=8)
    assert (timing.ops, len(timing.latencies)) == (12, 12)
    assert most == 3  # every conversation had a turn in flight at once, never more than one each
    assert seen == {name: [f"question {n}" for n in range(10, 14)] for name in "abc"}


async def test_a_turn_that_reads_the_wrong_window_fails_the_run() -> None:
    async def short(conversation: str, messages: list[Message]) -> tuple[int, str]:
        return 19, messages[-1]["content"]

    async def stale(conversation: str, messages: list[Message]) -> tuple[int, str]:
        return 20, exchange(0)[-1]["content"]

    with pytest.raises(RuntimeError, match="read 19 messages"):
        await run_conversations(short, ["a", "b"], turns=2, first=5, window=20, concurrency=2)
    with pytest.raises(RuntimeError, match="not the 20 ending with the reply it wrote"):
        await run_conversations(stale, ["a"], turns=1, first=5, window=20, concurrency=1)


async def test_round_robin_calls_each_item_in_order_and_never_overlaps() -> None:
    in_flight: set[str] = set()
    calls: dict[str, list[int]] = {"a": [], "b": []}
    checked: list[tuple[str, int, str]] = []

    async def call(item: str, n: int) -> str:
        assert item not in in_flight
        in_flight.add(item)
        await asyncio.sleep(0)
        calls[item].append(n)
        in_flight.discard(item)
        return f"{item}{n}"

    def check(item: str, n: int, result: str) -> None:
        checked.append((item, n, result))

    timing = await run_round_robin(call, ["a", "b"], times=3, concurrency=4, check=check)
    assert (timing.ops, len(timing.latencies)) == (6, 6)
    assert calls == {"a": [0, 1, 2], "b": [0, 1, 2]}
    assert sorted(checked) == [(item, n, f"{item}{n}") for item in "ab" for n in range(3)]

    def refuse(item: str, n: int, result: str) -> None:
        raise RuntimeError(f"bad {result}")

    with pytest.raises(RuntimeError, match="bad a0"):
        await run_round_robin(call, ["a"], times=2, concurrency=1, check=refuse)


async def test_interleaved_slices_alternate_and_add_up() -> None:
    ran: list[tuple[str, int, int]] = []

    def run_of(name: str) -> Any:
        async def run(count: int, done: int) -> Timing:
            ran.append((name, count, done))
            return Timing(count, 0.5, [0.1] * count)

        return run

    small, large = await interleaved([run_of("s"), run_of("l")], [4, 6], 3)
    assert ran == [("s", 1, 0), ("l", 2, 0), ("l", 2, 2), ("s", 1, 1), ("s", 2, 2), ("l", 2, 4)]
    assert (small.ops, small.seconds, len(small.latencies)) == (4, 1.5, 4)
    assert (large.ops, large.seconds, len(large.latencies)) == (6, 1.5, 6)


def test_messages_are_about_200_characters_and_history_is_exact() -> None:
    user, reply = exchange(4321)
    assert (user["role"], reply["role"]) == ("user", "assistant")
    assert len(user["content"]) == len(reply["content"]) == 200
    assert user["content"].startswith("question 4321: ")
    assert history(0, 5) == [*exchange(0), *exchange(1), exchange(2)[0]]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--backends", "memory,mysql"], "mysql"),
        (["--workloads", "w9"], "w9"),
        (["--rounds", "0"], "'0'"),
        (["--concurrency", "1,x"], "'x'"),
        (["--scale", "0"], "'0'"),
        (["--workloads", "w1s", "--scale", "999"], "at least 1,000"),
    ],
)
def test_bad_arguments_exit_with_usage_error(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_unreachable_server_is_an_error_row_not_a_crash(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--quick", "--backends", "postgres", "--workloads", "w1", "--concurrency", "1"]
    argv += ["--postgres-url", "postgresql://postgres@127.0.0.1:1/test", "--no-progress"]
    assert main(argv, out=out, err=err) == 1
    text = out.getvalue()
    assert "error: w1 postgres ours c=1: StoreUnavailableError: " in text
    assert "error: w1 postgres asyncpg c=1: " in text
    assert "error (StoreUnavailableError, see below)" in text
    assert "2 measurement(s) could not run" in err.getvalue()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_rich_output_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich now raises ImportError
    report = Report(date="d", machine={"cpu_count": 2, "cpu": "c", "python": "3"}, config={})
    report.workloads.append(WorkloadReport("w1", "title", [Row("w1", "memory", "ours", "label", True, 1)]))
    terminal = FakeTerminal()
    render(report, terminal)
    assert terminal.getvalue().startswith("W1 title\nbackend")
    with progress_for(terminal) as progress:
        assert isinstance(progress, LineProgress)


def test_rich_tables_when_asked() -> None:
    report = Report(date="d", machine={"cpu_count": 2, "cpu": "c", "python": "3"}, config={})
    row = Row("w1", "memory", "dict+json", "dict [raw]", False, 1, status="error", note="boom [x]")
    report.workloads.append(WorkloadReport("w1", "title", [row]))
    out = io.StringIO()
    render(report, out, rich=True)
    assert "W1 title" in out.getvalue()
    assert "[x]" in out.getvalue()  # cell text is never read as rich markup
    assert "[raw]" in out.getvalue()


# -- W1 at scale -----------------------------------------------------------------------------------


async def records_in_database(store: BaseSessionStore, spec: StoreSpec) -> int:
    """Count a store's records with the plain drivers: rows of its table, keys under its prefix."""
    if isinstance(store, SQLiteSessionStore):
        conn = sqlite3.connect(spec.sqlite_path)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {store.names.sessions}").fetchone()[0])
        finally:
            conn.close()
    if spec.backend == "redis":
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        try:
            return len({name async for name in client.scan_iter(match=f"{spec.name}:*", count=1000)})
        finally:
            await client.aclose()
    import asyncpg

    conn_pg = await asyncpg.connect(POSTGRES_URL)
    try:
        return int(await conn_pg.fetchval(f'SELECT count(*) FROM "{spec.name}"'))
    finally:
        await conn_pg.close()


async def leftovers(specs: list[StoreSpec]) -> int:
    """What the stores left behind: files, Redis keys under their prefixes, PostgreSQL tables named after them."""
    found = 0
    for spec in specs:
        if spec.backend == "sqlite":
            found += len(list(spec.workdir.glob(f"{spec.name}.db*")))
        elif spec.backend == "redis":
            import redis.asyncio as aioredis

            client = aioredis.from_url(REDIS_URL)
            found += len([name async for name in client.scan_iter(match=f"{spec.name}:*", count=1000)])
            await client.aclose()
        else:
            import asyncpg

            conn = await asyncpg.connect(POSTGRES_URL)
            found += int(await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE $1", f"{spec.name}%"))
            await conn.close()
    return found


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
async def test_tiny_w1_at_scale(backend: str, tmp_path: Path) -> None:
    require_server(backend)
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tiny(
        backends=(backend,), workdir=workdir, scale_small=50, scale=500, redis_url=REDIS_URL, postgres_url=POSTGRES_URL
    )
    counted: dict[int, int] = {}
    specs: list[StoreSpec] = []

    async def check(store: BaseSessionStore, spec: StoreSpec, sessions: int) -> None:
        # Before any update: every prefilled session is in the database and reads back through the store.
        counted[sessions] = await records_in_database(store, spec)
        specs.append(spec)
        assert await store.get(bulk_key(sessions - 1)) == w1s_session(20)
        assert await store.get(bulk_key(sessions)) is None

    w1s = await run_w1s(config, workdir, NoProgress(), check=check)

    assert counted == {50: 50, 500: 500}
    assert [(row.subject, row.concurrency) for row in w1s.rows] == [
        (f"ours@{sessions}", concurrency) for concurrency in (1, 8) for sessions in (50, 500)
    ]
    rows = {(row.concurrency, row.subject): row for row in w1s.rows}
    prefilled = 20 * w1s_session(20)["count"]  # 20 users (tiny's), each prefilled with 20 counted updates
    for number, row in enumerate(w1s.rows):
        assert isinstance(row, ScaleRow)
        assert row.status == "ok", row.note
        assert (row.workload, row.backend, row.ours) == ("w1s", backend, True)
        assert row.label == f"sessionware Router+session(), {row.sessions:,} sessions"
        assert (row.stored, row.users) == (row.sessions, 20)
        assert row.prefill_s is not None
        assert row.ops == 100
        # Each concurrency ran the whole stream once more on the same stores: nothing lost on top of what was there.
        assert row.expected == row.final == prefilled + 100 * (1 + number // 2)
        assert row.lost == 0
        assert row.ops_per_s == pytest.approx(row.ops / row.seconds)
        assert 0 < row.p50_ms <= row.p99_ms

        if row.sessions == 50:
            assert (row.scale_ratio, row.target, row.met) == (None, "", None)
            continue
        small = rows[(row.concurrency, "ours@50")]
        assert row.scale_ratio == row.ops_per_s / small.ops_per_s
        assert row.target == f"500/50 ops/s {row.scale_ratio:.2f}x ≥0.8x"
        assert row.met == (row.scale_ratio >= 0.8)

    # Both stores were removed: no file, no key, no table is left.
    assert len(specs) == 2
    assert await leftovers(specs) == 0

    report = Report(date="d", machine={"cpu_count": 2, "cpu": "c", "python": "3"}, config={})
    report.workloads.append(w1s)
    out = io.StringIO()
    render(report, out, rich=False)
    text = out.getvalue()
    assert text.startswith("W1S bot update at scale")
    assert "sessionware Router+session(), 500 sessions" in text
    assert "500/50 ops/s" in text
    data = report.to_dict()["workloads"][0]["rows"]
    assert [(row["sessions"], row["stored"]) for row in data] == [(50, 50), (500, 500)] * 2
    assert data[1]["scale_ratio"] == w1s.rows[1].ops_per_s / w1s.rows[0].ops_per_s
    assert {"users", "prefill_s"} <= set(data[0])


async def test_w1_at_scale_skips_memory_and_reports_an_unreachable_server(tmp_path: Path) -> None:
    config = tiny(
        backends=("memory", "postgres"), scale_small=5, scale=10, postgres_url="postgresql://postgres@127.0.0.1:1/test"
    )
    w1s = await run_w1s(replace(config, concurrency=(1,)), tmp_path, NoProgress())
    memory, small, large = w1s.rows
    assert (memory.backend, memory.status, memory.note) == (
        "memory",
        "n/a",
        "n/a (W1 at scale runs on sqlite, redis, postgres)",
    )
    for row in (small, large):
        assert isinstance(row, ScaleRow)
        assert (row.backend, row.status, row.stored, row.scale_ratio) == ("postgres", "error", None, None)
        assert row.note.startswith("StoreUnavailableError: ")
    assert (large.target, large.met) == ("10/5 ops/s ≥0.8x", None)


def test_w1_at_scale_runs_only_when_named_and_its_size_is_chosen() -> None:
    def config(*argv: str) -> BenchConfig:
        return config_from_args(parser().parse_args(list(argv)))

    assert "w1s" not in config().workloads
    assert config("--workloads", "w1s").scale == 1_000_000
    assert config("--workloads", "w1s", "--quick").scale == 100_000
    assert config("--workloads", "w1s", "--quick", "--scale", "2000").scale == 2000
    assert config("--workloads", "w1s", "--scale", "5000").scale_small == 1000
