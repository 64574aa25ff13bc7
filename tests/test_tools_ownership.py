"""A tool cannot reach another user's session through the toolbox, whatever it calls its arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field, Json

from sessionware import SessionManager, create_tool, create_toolbox, session_middleware
from sessionware.store import BaseSessionStore

NAMES = ["SessionId", "sessionID", "session-id", "SESSION_ID", "conversation"]


@pytest.fixture
def manager(store: BaseSessionStore) -> SessionManager:
    return SessionManager(store)


async def test_no_argument_name_reaches_bobs_session(manager: SessionManager) -> None:
    alice = await manager.create_session("alice", metadata={"secret": "alice's"})
    bob = await manager.create_session("bob", metadata={"secret": "bob's"})
    toolbox = create_toolbox(middleware=[session_middleware(manager)])
    seen: list[Any] = []

    async def read(target: str, context: Any) -> Any:
        unscoped = await manager.get_session(target)  # the manager itself, no user_id
        scoped = await context.sessions.get_session(target)
        seen.append((unscoped, scoped))
        return None if unscoped is None else unscoped.metadata.get("secret")

    for i, name in enumerate(NAMES):
        field = Field(alias=name) if name != "conversation" else Field()

        class Args(BaseModel):
            target: str = field

        async def execute(args: Any, context: Any) -> Any:
            return await read(args.target, context)

        create_tool(name=f"t{i}", description="read", schema=Args, execute=execute, toolbox=toolbox)
        result = await toolbox.execute(
            {"name": f"t{i}", "arguments": {name if name != "conversation" else "target": bob.id}},
            context={"user_id": "alice", "session_id": alice.id},
        )
        assert result.result != "bob's"

    class Nested(BaseModel):
        payload: Json[dict[str, str]]

    async def nested(args: Nested, context: Any) -> Any:
        return await read(args.payload["session_id"], context)

    create_tool(name="nested", description="read", schema=Nested, execute=nested, toolbox=toolbox)
    result = await toolbox.execute(
        {"name": "nested", "arguments": {"payload": json.dumps({"session_id": bob.id})}},
        context={"user_id": "alice", "session_id": alice.id},
    )
    assert result.outcome == "denied"
    assert seen  # the tool whose argument has a neutral name ran, and found nothing of Bob's
    assert all(pair == (None, None) for pair in seen)
    own = await toolbox.execute(
        {"name": "t4", "arguments": {"target": alice.id}}, context={"user_id": "alice", "session_id": alice.id}
    )
    assert own.result == "alice's"
    assert await manager.get_session(bob.id) is not None  # outside a tool call the manager is unscoped


async def test_named_session_arguments_are_denied(manager: SessionManager) -> None:
    alice = await manager.create_session("alice")
    bob = await manager.create_session("bob")
    toolbox = create_toolbox(middleware=[session_middleware(manager)])

    class Args(BaseModel):
        sid: str = Field(alias="SESSION-ID")

    async def execute(args: Args, context: Any) -> str:
        return "ran"

    create_tool(name="t", description="t", schema=Args, execute=execute, toolbox=toolbox)
    result = await toolbox.execute(
        {"name": "t", "arguments": {"SESSION-ID": bob.id}}, context={"user_id": "alice", "session_id": alice.id}
    )
    assert result.outcome == "denied"


async def test_for_user_checks_every_call(manager: SessionManager) -> None:
    bob = await manager.create_session("bob")
    alice = manager.for_user("alice")
    assert await alice.get_session(bob.id) is None
    assert (await alice.list_sessions()).sessions == ()
    mine = await alice.create_session()
    await alice.add_message(mine.id, "user", "hi")
    assert [m.content for m in await alice.history(mine.id)] == ["hi"]
    from sessionware import SessionNotFoundError

    with pytest.raises(SessionNotFoundError):
        await alice.add_message(bob.id, "user", "x")
    with pytest.raises(SessionNotFoundError):
        await alice.update_session(bob.id, metadata={"x": 1})


async def test_a_missing_id_costs_the_same_work_as_someone_elses() -> None:
    from sessionware import InMemorySessionStore, JsonCodec, SessionManager

    class CountingCodec(JsonCodec):
        decodes = 0

        def decode(self, key: str, data: bytes) -> Any:
            CountingCodec.decodes += 1
            return super().decode(key, data)

    manager = SessionManager(InMemorySessionStore(codec=CountingCodec()))
    bobs = await manager.create_session("bob", metadata={"secret": "s"})
    work = {}
    for name, session_id in (("someone else's", bobs.id), ("missing", "M" * 32)):
        CountingCodec.decodes = 0
        assert await manager.get_session(session_id, user_id="alice", history=0, tool_invocations=0) is None
        work[name] = CountingCodec.decodes
    assert work["missing"] == work["someone else's"] == 1, work
