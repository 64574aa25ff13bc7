"""Erasing a user's data while another process is updating one of their sessions: it stays erased.

Process A holds a session (``edit_metadata`` whose editor waits) while this
test's process runs ``delete_user_data`` for its owner. With
``isolation="distributed"`` the erasure waits for A's lease, A's write lands
first and is then erased with everything else: the session is gone for good.
With ``isolation="local"`` (each process only locks for itself) A's write
comes after the erasure and brings the session back, which is what the
leases prevent.

A is this module run as ``python -m tests.test_erase_mp '<json config>'``: it
says ``holding`` once its editor runs, waits for a line on stdin, finishes its
edit and says ``written``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessionware import SessionManager

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


async def writer(config: dict[str, Any]) -> None:
    """Process A: hold the session in an edit until told to finish it."""
    async with SessionManager(config["url"], isolation=config["isolation"], lease=10) as manager:
        loop = asyncio.get_running_loop()

        async def edit(meta: dict[str, Any]) -> None:
            print("holding", flush=True)
            await loop.run_in_executor(None, sys.stdin.readline)
            meta["written_by_a"] = True

        await manager.edit_metadata(config["session_id"], edit)
        print("written", flush=True)


def start_writer(config: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.test_erase_mp", json.dumps(config)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def readline(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return (await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)).strip()


@pytest.mark.parametrize("isolation", ["distributed", "local"])
async def test_delete_user_data_is_not_undone_by_a_writer_in_another_process(store_url: str, isolation: str) -> None:
    url = store_url
    async with SessionManager(url, isolation=isolation, lease=10) as manager:  # type: ignore[arg-type]
        kept = await manager.create_session("bob", metadata={"mine": True})
        doomed = await manager.create_session("alice", metadata={"secret": "s3"})
        config = {"url": url, "isolation": isolation, "session_id": doomed.id}
        proc = start_writer(config)
        try:
            assert await readline(proc) == "holding"
            erasing = asyncio.create_task(manager.delete_user_data("alice"))
            await asyncio.sleep(0.5)  # the erasure is under way (or, under a lease, waiting for it)
            assert erasing.done() == (isolation == "local")
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert await readline(proc) == "written"
            assert await erasing == 1
        finally:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        back = await manager.get_session(doomed.id)
        if isolation == "distributed":
            assert back is None
            assert (await manager.list_sessions("alice")).sessions == ()
        else:
            # Without leases A's write lands after the erasure: the erased session is back.
            assert back is not None
            assert back.metadata["written_by_a"] is True
        mine = await manager.get_session(kept.id, user_id="bob")
        assert mine is not None
        assert dict(mine.metadata) == {"mine": True}


if __name__ == "__main__":
    asyncio.run(writer(json.loads(sys.argv[1])))
