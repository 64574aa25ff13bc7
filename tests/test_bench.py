"""The benchmark harness on a tiny configuration: report structure, lost-update counts, ratios from this run.

No timing assertions: only that every number in the report is consistent with
the others and with what was stored.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sessionware.bench import BenchConfig, main, run_bench
from sessionware.bench.output import LineProgress, progress_for, render
from sessionware.bench.report import Report, Row, WorkloadReport
from sessionware.bench.spaces import StoreSpec
from sessionware.bench.workloads import LABELS, PENDING, W1_SUBJECTS
from sessionware.store import LockingStore


def tiny(**options: Any) -> BenchConfig:
    """A configuration small enough for a test: 20 users, 100 updates, 5 tasks x 4 increments, 2 processes."""
    sizes: dict[str, Any] = {"users": 20, "updates": 100, "concurrency": (1, 8), "tasks": 5, "increments": 4}
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


def test_command_writes_plain_tables_and_json(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "report.json"
    argv = ["--quick", "--backends", "memory", "--workloads", "w1,w2", "--json", str(path)]
    assert main(argv, out=out, err=err) == 0

    text = out.getvalue()
    assert "W1 bot update" in text
    assert "dict + stdlib json (raw)" in text
    assert "W2: not measured" in text
    header = next(line for line in text.splitlines() if line.startswith("backend"))
    assert header.split()[:4] == ["backend", "subject", "conc", "ops/s"]
    assert "W1 memory ours c=64: 2000/2000" in err.getvalue()  # one progress line per run when piped

    data = json.loads(path.read_text())
    assert data["config"]["quick"] is True
    assert data["config"]["updates"] == 2000
    assert data["pending"] == {"w2": PENDING["w2"]}
    assert {row["concurrency"] for row in data["workloads"][0]["rows"]} == {1, 64}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--backends", "memory,mysql"], "mysql"),
        (["--workloads", "w9"], "w9"),
        (["--rounds", "0"], "'0'"),
        (["--concurrency", "1,x"], "'x'"),
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
