"""Snapshot models, the key layout and construction checks of the agent surface (no backend needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sessionware.agents import (
    AgentKeys,
    FrozenMap,
    MissingCapabilityError,
    Session,
    SessionManager,
    ToolCall,
    approx_tokens,
)
from sessionware.agents.keyspace import check_session_id, escape_user_id, new_session_id
from sessionware.agents.models import Message
from sessionware.errors import InvalidStoreURLError, InvalidValueError, SessionwareError
from sessionware.frozen import FrozenList, thaw
from sessionware.stores.memory import InMemorySessionStore
from sessionware.stores.sql.sqlite import SQLiteSessionStore

NOW = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_frozen_map_is_deeply_read_only_and_equal_to_plain_json() -> None:
    value = FrozenMap({"a": {"b": [1, {"c": 2}]}, "d": (3,)})
    assert value == {"a": {"b": [1, {"c": 2}]}, "d": [3]}
    assert isinstance(value["a"], FrozenMap)
    assert isinstance(value["a"]["b"], FrozenList)
    for change in (
        lambda: value.__setitem__("x", 1),
        lambda: value.__delitem__("a"),
        lambda: value.update(x=1),
        lambda: value.pop("a"),
        lambda: value.setdefault("x", 1),
        lambda: value.clear(),
        lambda: value["a"]["b"].append(3),
        lambda: value["a"]["b"].__setitem__(0, 9),
        lambda: value["a"]["b"][1].__setitem__("c", 9),
        lambda: setattr(value, "_data", {}),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert value == {"a": {"b": [1, {"c": 2}]}, "d": [3]}
    plain = value.to_dict()
    plain["a"]["b"].append(4)
    assert plain == {"a": {"b": [1, {"c": 2}, 4]}, "d": [3]}
    assert value["a"]["b"] == [1, {"c": 2}]
    assert thaw(value) == value.to_dict()
    assert type(thaw(value)["d"]) is list
    assert FrozenList([1, [2]]) == [1, [2]]
    assert FrozenList([1]) != [2]
    assert FrozenList([1]) == (1,)
    assert hash(FrozenMap({"a": [1, {"b": 2}]})) == hash(FrozenMap({"a": (1, {"b": 2})}))


def test_session_snapshot_is_frozen_and_round_trips_as_json() -> None:
    session = Session(
        id=new_session_id(),
        user_id="u",
        conversation_history=FrozenList(
            [
                Message(
                    seq=1,
                    role="assistant",
                    content=None,
                    tool_calls=(ToolCall(id="c", name="f", arguments={"x": [1]}),),
                    created_at=NOW,
                )
            ]
        ),
        metadata={"prefs": {"theme": "dark"}},
        created_at=NOW,
        updated_at=NOW,
    )
    assert isinstance(session.metadata, FrozenMap)
    with pytest.raises(ValueError, match="frozen"):
        session.metadata = FrozenMap({})
    frozen_arguments = session.conversation_history[0].tool_calls[0].arguments
    assert isinstance(frozen_arguments, FrozenMap)
    with pytest.raises(TypeError, match="read-only"):
        frozen_arguments["x"].append(2)
    dumped = session.model_dump(mode="json")
    assert dumped["metadata"] == {"prefs": {"theme": "dark"}}
    assert dumped["conversation_history"][0]["tool_calls"][0]["arguments"] == {"x": [1]}
    assert Session.model_validate_json(session.model_dump_json()) == session
    assert Session.model_json_schema()["properties"]["metadata"]["type"] == "object"


def test_a_message_freezes_the_shared_tool_call_and_keeps_its_verbatim_text() -> None:
    text = '{"x": [1],  "y": "z"}'
    call = ToolCall(id="c", name="f", arguments=text)
    message = Message(seq=1, role="assistant", content=None, tool_calls=(call,), created_at=NOW)
    [held] = message.tool_calls
    assert isinstance(held.arguments, FrozenMap)
    assert held.arguments == {"x": [1], "y": "z"}
    assert held.arguments_text == text
    assert held == call
    assert call.arguments == {"x": [1], "y": "z"}
    dumped = message.model_dump(mode="json")["tool_calls"][0]
    assert dumped == {"id": "c", "name": "f", "arguments": {"x": [1], "y": "z"}, "arguments_text": text}
    assert Message.model_validate_json(message.model_dump_json()) == message
    with pytest.raises(ValueError, match="not a JSON object"):
        Message(seq=1, role="assistant", content=None, tool_calls=(ToolCall(name="f", arguments="[]"),), created_at=NOW)


def test_user_id_escaping_keeps_prefixes_apart() -> None:
    keys = AgentKeys("agent")
    users = ["a", "a:b", "a%", "a*", "a%3Ab", "a:", "a b", "ä", "a_", ":", "%"]
    prefixes = {user: keys.user_prefix(user) for user in users}
    assert len(set(prefixes.values())) == len(users)
    for user in users:
        own_key = keys.user_index(user, "0000000000000001:" + "x" * 32)
        for other, prefix in prefixes.items():
            assert own_key.startswith(prefix) == (other == user), (user, other)
    assert escape_user_id("a:b") == "a%3Ab"
    assert escape_user_id("a%3Ab") == "a%253Ab"
    assert ":" not in escape_user_id(":::")


def test_session_ids_carry_at_least_128_random_bits() -> None:
    session_id = new_session_id()
    assert len(session_id) * 6 >= 128 * 1.4
    assert check_session_id(session_id) == session_id


def test_key_layout() -> None:
    keys = AgentKeys("bots.v2")
    sid = "S" * 32
    # Every key of one session carries its id in braces: one Redis Cluster hash slot for all of them.
    assert keys.record(sid) == "bots.v2:s:{" + sid + "}"
    assert keys.history(sid) == "bots.v2:h:{" + sid + "}"
    assert keys.tools(sid) == "bots.v2:t:{" + sid + "}"
    assert keys.user_prefix("u:1") == "bots.v2:u:u%3A1:"
    entry = "0006619c78998ba3:" + sid
    assert keys.user_index("u:1", entry) == "bots.v2:u:u%3A1:0006619c78998ba3:{" + sid + "}"
    assert keys.entry_of(keys.user_index("u:1", entry).removeprefix(keys.user_prefix("u:1"))) == entry
    assert keys.session_id_of(keys.record(sid)) == sid
    for other in ("bots.v2:s:" + sid, "bots.v2:h:{" + sid + "}", "bots.v2:s:{short}", "agent:s:{" + sid + "}"):
        assert keys.session_id_of(other) is None
    assert keys.entry_of("0006619c78998ba3:" + sid) is None  # the 0.1 form is not an entry of this layout
    for bad in ("", "a:b", "a*", "x" * 65, None):
        with pytest.raises(InvalidValueError):
            AgentKeys(bad)  # type: ignore[arg-type]


class RecordsOnly:
    """A store written to the bare SessionStore contract, without logs."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)


class LogsWithoutTtl(RecordsOnly):
    """A store with logs whose ``set`` takes no ``ttl``."""

    async def log_append(self, key: str, entries: Any, *, ttl: Any = None, max_len: Any = None) -> list[int]:
        return []

    async def log_read(self, key: str, *, after: Any = None, before: Any = None, last: Any = None) -> list[Any]:
        return []

    async def log_length(self, key: str) -> int:
        return 0

    async def log_last_seq(self, key: str) -> int:
        return 0

    async def log_delete(self, key: str) -> None:
        return None


async def test_missing_capabilities_are_named() -> None:
    with pytest.raises(MissingCapabilityError, match="LogStore") as info:
        SessionManager(RecordsOnly())
    assert isinstance(info.value, SessionwareError)
    assert info.value.capability.startswith("LogStore")
    with pytest.raises(MissingCapabilityError, match="SessionStore"):
        SessionManager(object())  # type: ignore[arg-type]
    manager = SessionManager(LogsWithoutTtl())
    session = await manager.create_session("u")
    with pytest.raises(MissingCapabilityError, match="ScannableStore"):
        await manager.list_sessions("u")
    with pytest.raises(MissingCapabilityError, match="ScannableStore"):
        await manager.delete_user_data("u")
    with pytest.raises(MissingCapabilityError, match="ttl"):
        await manager.create_session("u", ttl=5)
    with pytest.raises(MissingCapabilityError, match="ttl"):
        SessionManager(LogsWithoutTtl(), ttl=5)
    assert await manager.purge_expired() == 0
    assert await manager.get_session(session.id) is not None


async def test_default_store_is_in_memory() -> None:
    async with SessionManager() as manager:
        assert isinstance(manager.store, InMemorySessionStore)
        session = await manager.create_session("u")
        assert await manager.get_session(session.id) is not None


async def test_store_urls_are_opened_and_closed_by_the_manager(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/agents.db"
    async with SessionManager(url) as first:
        assert isinstance(first.store, SQLiteSessionStore)
        session = await first.create_session("u", metadata={"kept": True})
        await first.add_message(session.id, "user", "persisted")
    async with SessionManager(url) as second:
        got = await second.get_session(session.id, user_id="u")
        assert got is not None
        assert got.metadata == {"kept": True}
        assert [m.content for m in got.conversation_history] == ["persisted"]
    with pytest.raises(InvalidStoreURLError):
        SessionManager("nonsense://x")


async def test_manager_options_are_checked() -> None:
    for options in (
        {"max_messages": 0},
        {"max_tool_invocations": -1},
        {"history_window": -1},
        {"ttl": 0},
        {"namespace": "a:b"},
    ):
        with pytest.raises(InvalidValueError):
            SessionManager(**options)


def test_approx_tokens_grows_with_content() -> None:
    short = Message(seq=1, role="user", content="hi", created_at=NOW)
    long = Message(seq=2, role="user", content="x" * 400, created_at=NOW)
    call = Message(
        seq=3,
        role="assistant",
        content=None,
        tool_calls=(ToolCall(id="c", name="search", arguments={"q": "y" * 100}),),
        created_at=NOW,
    )
    assert 0 < approx_tokens(short) < approx_tokens(long)
    assert approx_tokens(call) > 25


def test_session_ids_never_look_like_options() -> None:
    from sessionware.agents.keyspace import check_session_id, new_session_id

    ids = [new_session_id() for _ in range(5000)]
    assert not any(i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(check_session_id(i) == i and len(i) == 32 for i in ids)
