"""Several worker processes, one session: nothing lost with distributed isolation, updates lost without it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sessionware import SessionManager, open_store

ROOT = Path(__file__).resolve().parent.parent
PROCESSES, TASKS, UPDATES = 4, 25, 20

pytestmark = pytest.mark.slow


def run_workers(config: dict[str, Any]) -> list[str]:
    """Run PROCESSES workers that start together; return what each printed."""
    start_at = time.time() + 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.mp_worker", json.dumps({**config, "worker": w, "start_at": start_at})],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)  # SQL: tests/test_sql_isolation.py has it
async def test_counter_through_middleware(store_url: str) -> None:
    url = store_url
    config = {"url": url, "mode": "counter", "tasks": TASKS, "updates": UPDATES}
    run_workers({**config, "isolation": "distributed"})
    store: Any = open_store(url)
    assert await store.get("1") == {"n": PROCESSES * TASKS * UPDATES}
    await store.unlock((await store.lock("1", lease=1, wait=0)).lease)  # every lease was released
    await store.delete("1")
    run_workers({**config, "isolation": "local"})
    lost = PROCESSES * TASKS * UPDATES - (await store.get("1") or {"n": 0})["n"]
    await store.close()
    print(f"\n{url.split(':')[0]}: isolation=local lost {lost} of {PROCESSES * TASKS * UPDATES} updates")
    assert lost > 0, "without cross-process isolation, concurrent workers lose updates"


async def test_add_message_from_many_processes(store_url: str) -> None:
    url = store_url
    manager = SessionManager(url, isolation="distributed")
    s = await manager.create_session("worker-user")
    run_workers(
        {
            "url": url,
            "mode": "messages",
            "tasks": TASKS,
            "updates": UPDATES,
            "isolation": "distributed",
            "session_id": s.id,
        }
    )
    total = PROCESSES * TASKS * UPDATES
    history = await manager.history(s.id, last=total)
    assert [m.seq for m in history] == list(range(1, total + 1))
    assert len({m.content for m in history}) == total
    snapshot = await manager.get_session(s.id, history=0)
    assert snapshot is not None
    assert snapshot.message_count == total
    await manager.close()


async def test_log_appends_and_writes_from_many_processes(store_url: str) -> None:
    url = store_url
    """Batches of 1-3 entries appended concurrently: gap-free, each batch contiguous, nothing lost."""
    tasks, rounds = 3, 40
    outputs = run_workers({"url": url, "mode": "log", "tasks": tasks, "updates": rounds, "isolation": "none"})
    results: list[list[list[list[int]]]] = [json.loads(out) for out in outputs]
    per_round = [1 + i % 3 for i in range(rounds)]
    total = PROCESSES * tasks * sum(per_round)
    assigned = sorted(s for worker in results for task in worker for batch in task for s in batch)
    assert assigned == list(range(1, total + 1))
    store: Any = open_store(url)
    entries = await store.log_read("shared")
    assert [e.seq for e in entries] == list(range(1, total + 1))
    by_seq = {e.seq: e.value for e in entries}
    for w, worker in enumerate(results):
        for t, task in enumerate(worker):
            for i, batch in enumerate(task):
                assert batch == list(range(batch[0], batch[0] + per_round[i])), "a batch is contiguous"
                assert [by_seq[s] for s in batch] == [{"w": w, "t": t, "i": i, "part": p} for p in range(per_round[i])]
    assert len([k async for k in store.scan("w")]) == PROCESSES * tasks * rounds
    await store.close()
