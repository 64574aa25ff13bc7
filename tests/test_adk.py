"""Google ADK sessions in sessionware: ADK's real ``Runner`` with a scripted model on every backend, ADK's own
session-service cases restated, stale writers refused by revision, ownership, expiry, and four processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.session import Session
from google.genai import types

from sessionware import BaseSessionStore, InMemorySessionStore, InvalidValueError, SessionManager
from sessionware.agents.export import to_openai_messages
from sessionware.integrations.adk import PROVIDER, SessionwareSessionService
from sessionware.store import PurgeableStore
from sessionware.testing import Advance
from tests.adk_worker import counting_agent, user_message
from tests.helpers import run_worker_processes

APP = "my_app"


def text_event(text: str, *, author: str = "user", **fields: Any) -> Event:
    role = "user" if author == "user" else "model"
    return Event(
        invocation_id="invocation",
        author=author,
        content=types.Content(role=role, parts=[types.Part(text=text)]),
        **fields,
    )


async def run_turn(runner: Runner, user_id: str, session_id: str, text: str) -> list[Event]:
    return [e async for e in runner.run_async(user_id=user_id, session_id=session_id, new_message=user_message(text))]


def dumped(events: list[Event]) -> list[Any]:
    return [e.model_dump(mode="json", exclude_none=True) for e in events]


async def test_runner_turns_with_a_tool_are_stored_and_reload_in_another_service(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    service = SessionwareSessionService(manager)
    runner = Runner(app_name=APP, agent=counting_agent(), session_service=service)
    await service.create_session(app_name=APP, user_id="ada", session_id="support 42/ticket")
    finals = []
    for turn in range(3):
        events = await run_turn(runner, "ada", "support 42/ticket", f"count please ({turn})")
        assert [bool(e.get_function_calls()) for e in events] == [True, False, False]
        finals.append(events[-1].content.parts[0].text)  # type: ignore[union-attr,index]
    assert finals == ["saw 3, n=1", "saw 7, n=2", "saw 11, n=3"], "each turn was sent the turns before it"
    mine = await service.get_session(app_name=APP, user_id="ada", session_id="support 42/ticket")
    await runner.close()

    again = SessionwareSessionService(SessionManager(store))
    loaded = await again.get_session(app_name=APP, user_id="ada", session_id="support 42/ticket")
    assert loaded is not None
    assert mine is not None
    assert len(loaded.events) == 12, "user message, function call, function response, answer: per turn"
    assert dumped(loaded.events) == dumped(mine.events)
    assert loaded == mine, "events, state, revision and update time read back the same"
    assert loaded.state == {"n": 3, "user:total": 3, "app:total": 3}, "temp: keys are never stored"
    calls = loaded.events[1].get_function_calls()
    responses = loaded.events[2].get_function_responses()
    assert calls[0].id == responses[0].id
    assert responses[0].response == {"n": 1}

    (stored,) = (await manager.list_sessions(f"{APP}\x1fada")).sessions
    history = await manager.history(stored.id)
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"] * 3
    assert all(m.source is not None and m.source.provider == PROVIDER for m in history)
    assert history[1].tool_calls[0].name == "count"
    assert history[2].tool_call_id == history[1].tool_calls[0].id
    assert history[3].text == "saw 3, n=1"
    exported = to_openai_messages(history)
    assert [m["role"] for m in exported][:4] == ["user", "assistant", "tool", "assistant"]

    runner = Runner(app_name=APP, agent=counting_agent(), session_service=again)
    events = await run_turn(runner, "ada", "support 42/ticket", "once more")
    assert events[-1].content.parts[0].text == "saw 15, n=4", "a run on the reloaded service goes on"  # type: ignore[union-attr,index]
    await runner.close()


async def test_create_with_a_chosen_or_generated_id_and_refuse_a_duplicate(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    assert await service.get_session(app_name=APP, user_id="test_user", session_id="123") is None
    made = await service.create_session(app_name=APP, user_id="test_user", state={"key": "value"})
    assert made.id
    assert made.app_name == APP
    assert made.user_id == "test_user"
    assert made.state == {"key": "value"}
    assert await service.get_session(app_name=APP, user_id="test_user", session_id=made.id) == made
    other = await service.create_session(app_name=APP, user_id="test_user")
    assert other.id != made.id

    chosen = await service.create_session(app_name=APP, user_id="test_user", session_id="session0")
    assert chosen.id == "session0"
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name=APP, user_id="test_user", session_id="session0", state={"app:x": 1})
    assert "app:x" not in (await service.get_session(app_name=APP, user_id="test_user", session_id="session0")).state  # type: ignore[union-attr]
    # ADK session ids are unique per app and user: the same id elsewhere is another session.
    elsewhere = await service.create_session(app_name=APP, user_id="someone", session_id="session0", state={"a": 1})
    other_app = await service.create_session(app_name="other_app", user_id="test_user", session_id="session0")
    assert elsewhere.state == {"a": 1}
    assert other_app.state == {}

    await service.delete_session(app_name=APP, user_id="test_user", session_id=made.id)
    assert await service.get_session(app_name=APP, user_id="test_user", session_id=made.id) is None
    await service.delete_session(app_name=APP, user_id="test_user", session_id=made.id)  # gone: nothing to do
    again = await service.create_session(app_name=APP, user_id="test_user", session_id=made.id)
    assert again.events == [], "a deleted id can be created afresh"
    assert again.state == {}


async def test_get_session_with_recent_events_and_after_a_timestamp(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    session = await service.create_session(app_name=APP, user_id="user")
    for i in range(1, 6):
        await service.append_event(session, Event(author="user", timestamp=i))
    assert len(session.events) == 5

    async def events(**config: Any) -> list[float]:
        got = await service.get_session(
            app_name=APP, user_id="user", session_id=session.id, config=GetSessionConfig(**config) if config else None
        )
        assert got is not None
        return [e.timestamp for e in got.events]

    assert await events() == [1, 2, 3, 4, 5]
    assert await events(num_recent_events=3) == [3, 4, 5]
    assert await events(num_recent_events=0) == []
    assert await events(num_recent_events=9) == [1, 2, 3, 4, 5]
    assert await events(after_timestamp=4.0) == [4, 5], "from the timestamp on, inclusive"
    assert await events(after_timestamp=50.0) == []
    assert await events(after_timestamp=4.0, num_recent_events=3) == [4, 5]
    assert await events(after_timestamp=2.0, num_recent_events=2) == [4, 5]


async def test_recent_events_count_events_not_the_messages_they_make(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    runner = Runner(app_name=APP, agent=counting_agent(), session_service=service)
    await service.create_session(app_name=APP, user_id="ada", session_id="s")
    for turn in range(3):
        await run_turn(runner, "ada", "s", f"t{turn}")
    await runner.close()
    everything = await service.get_session(app_name=APP, user_id="ada", session_id="s")
    assert everything is not None
    for n in (1, 2, 3, 5, 12):
        got = await service.get_session(
            app_name=APP, user_id="ada", session_id="s", config=GetSessionConfig(num_recent_events=n)
        )
        assert got is not None
        assert dumped(got.events) == dumped(everything.events[-n:]), f"the newest {n} events, tool responses too"


async def test_list_sessions_per_app_and_user_least_recently_updated_first(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    ids = [f"session{i}" for i in range(5)]
    for session_id in ids:
        await service.create_session(app_name=APP, user_id="test_user", session_id=session_id, state={"k": session_id})
    await service.create_session(app_name=APP, user_id="another", session_id="theirs")
    await service.create_session(app_name="other_app", user_id="test_user", session_id="elsewhere")
    first = await service.get_session(app_name=APP, user_id="test_user", session_id="session0")
    assert first is not None
    await service.append_event(first, text_event("hello", timestamp=time.time() + 1))

    listed = (await service.list_sessions(app_name=APP, user_id="test_user")).sessions
    assert [s.id for s in listed] == [*ids[1:], "session0"], "the session just updated comes last"
    assert all(s.events == [] for s in listed)
    assert [s.state["k"] for s in listed] == [*ids[1:], "session0"]
    everyone = (await service.list_sessions(app_name=APP)).sessions
    assert sorted((s.user_id, s.id) for s in everyone) == sorted(
        [("test_user", i) for i in ids] + [("another", "theirs")]
    ), "every user of the app, and no other app's sessions"
    assert [s.id for s in (await service.list_sessions(app_name="other_app")).sessions] == ["elsewhere"]
    assert (await service.list_sessions(app_name="no_app", user_id="test_user")).sessions == []


async def test_state_prefixes_app_and_user_shared_temp_dropped(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    service = SessionwareSessionService(manager)
    session_11 = await service.create_session(
        app_name=APP, user_id="user1", state={"key11": "value11"}, session_id="session11"
    )
    await service.create_session(app_name=APP, user_id="user1", state={"key12": "value12"}, session_id="session12")
    await service.create_session(app_name=APP, user_id="user2", session_id="session2")
    event = text_event(
        "text",
        actions=EventActions(
            state_delta={"app:key": "value", "user:key1": "value1", "temp:key": "temp", "key11": "value11_new"}
        ),
    )
    await service.append_event(session=session_11, event=event)
    assert session_11.state == {"key11": "value11_new", "app:key": "value", "user:key1": "value1", "temp:key": "temp"}
    assert event.actions.state_delta == {"app:key": "value", "user:key1": "value1", "key11": "value11_new"}

    session_12 = await service.get_session(app_name=APP, user_id="user1", session_id="session12")
    assert session_12 is not None
    assert session_12.state == {"key12": "value12", "app:key": "value", "user:key1": "value1"}
    session_2 = await service.get_session(app_name=APP, user_id="user2", session_id="session2")
    assert session_2 is not None
    assert session_2.state == {"app:key": "value"}, "another user shares the app state, not the user state"
    reloaded = await SessionwareSessionService(SessionManager(store)).get_session(
        app_name=APP, user_id="user1", session_id="session11"
    )
    assert reloaded is not None
    assert reloaded.state == {"key11": "value11_new", "app:key": "value", "user:key1": "value1"}
    assert reloaded.events[0].actions.state_delta == {"app:key": "value", "user:key1": "value1", "key11": "value11_new"}
    assert await service.get_user_state(app_name=APP, user_id="user1") == {"key1": "value1"}
    assert await service.get_user_state(app_name=APP, user_id="user2") == {}

    fresh = await service.create_session(
        app_name=APP, user_id="user1", state={"app:other": 2, "user:key2": 3, "temp:t": 4}, session_id="new"
    )
    assert fresh.state == {"app:key": "value", "app:other": 2, "user:key1": "value1", "user:key2": 3}
    other_app = await service.create_session(app_name="other_app", user_id="user1")
    assert other_app.state == {}, "app and user state belong to one app"


async def test_events_round_trip_losslessly(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    session = await service.create_session(app_name=APP, user_id="user")
    content = types.Content(role="user", parts=[types.Part.from_bytes(data=b"test_image_data", mime_type="image/png")])
    grounding = types.GroundingMetadata(search_entry_point=types.SearchEntryPoint(sdk_blob=b"test_sdk_blob"))
    await service.append_event(
        session, Event(invocation_id="invocation", author="user", content=content, grounding_metadata=grounding)
    )
    complete = Event(
        invocation_id="invocation",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="test_text")]),
        turn_complete=True,
        partial=False,
        actions=EventActions(artifact_delta={"file": 0}, transfer_to_agent="agent", escalate=True),
        long_running_tool_ids={"tool1"},
        error_code="error_code",
        error_message="error_message",
        interrupted=True,
    )
    await service.append_event(session, complete)
    got = await service.get_session(app_name=APP, user_id="user", session_id=session.id)
    assert got == session
    assert got is not None
    assert got.events[0].content == content
    assert got.events[0].grounding_metadata == grounding
    assert got.events[1] == complete

    answers = Event(
        invocation_id="invocation",
        author="agent",
        content=types.Content(
            role="user",
            parts=[
                types.Part.from_function_response(name="a", response={"x": 1}),
                types.Part.from_function_response(name="b", response={"y": 2}),
            ],
        ),
    )
    odd = Event(  # no valid Gemini content (a function response from the model): stored all the same
        invocation_id="invocation",
        author="agent",
        content=types.Content(role="model", parts=[types.Part.from_function_response(name="c", response={})]),
    )
    await service.append_event(session, answers)
    await service.append_event(session, odd)
    newest = await service.get_session(
        app_name=APP, user_id="user", session_id=session.id, config=GetSessionConfig(num_recent_events=2)
    )
    assert newest is not None
    assert newest.events == [answers, odd], "an event of two tool results is one event"
    await service.append_event(session, text_event("later"))
    newest = await service.get_session(
        app_name=APP, user_id="user", session_id=session.id, config=GetSessionConfig(num_recent_events=3)
    )
    assert newest is not None
    assert newest.events == session.events[-3:]

    partial = text_event("streaming...", partial=True)
    assert await service.append_event(session, partial) is partial
    got = await service.get_session(app_name=APP, user_id="user", session_id=session.id)
    assert got is not None
    assert len(got.events) == 5, "a partial event is not stored"


async def test_appending_to_a_stale_session_is_refused_and_writes_nothing(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    await service.create_session(app_name=APP, user_id="ada", session_id="s", state={"n": 0})
    first = await service.get_session(app_name=APP, user_id="ada", session_id="s")
    second = await service.get_session(app_name=APP, user_id="ada", session_id="s")
    assert first is not None
    assert second is not None
    await service.append_event(first, text_event("one", actions=EventActions(state_delta={"n": 1})))
    # Same timestamp for both writers: a check by update time could not tell them apart.
    stale = text_event(
        "two", timestamp=first.events[0].timestamp, actions=EventActions(state_delta={"n": 2, "app:x": 1})
    )
    with pytest.raises(StaleSessionError) as refused:
        await service.append_event(second, stale)
    assert isinstance(refused.value, ValueError), "ADK's callers catch ValueError"
    assert second.events == []
    stored = await service.get_session(app_name=APP, user_id="ada", session_id="s")
    assert stored is not None
    assert [e.content.parts[0].text for e in stored.events] == ["one"]  # type: ignore[union-attr,index]
    assert stored.state == {"n": 1}, "neither session nor app state was written"
    await service.append_event(stored, text_event("two"))
    await service.append_event(first if first == stored else stored, text_event("three"))

    by_hand = Session(id="s", app_name=APP, user_id="ada", events=stored.events[:1])
    with pytest.raises(StaleSessionError):
        await service.append_event(by_hand, text_event("four"))
    current = await service.get_session(app_name=APP, user_id="ada", session_id="s")
    assert current is not None
    by_hand = Session(id="s", app_name=APP, user_id="ada", events=current.events)
    await service.append_event(by_hand, text_event("four"))
    assert len((await service.get_session(app_name=APP, user_id="ada", session_id="s")).events) == 4  # type: ignore[union-attr]


async def test_another_user_never_sees_or_changes_a_session(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    mine = await service.create_session(app_name=APP, user_id="ada", session_id="private", state={"secret": 1})
    assert await service.get_session(app_name=APP, user_id="bob", session_id="private") is None
    assert await service.get_session(app_name="other_app", user_id="ada", session_id="private") is None
    assert (await service.list_sessions(app_name=APP, user_id="bob")).sessions == []
    await service.delete_session(app_name=APP, user_id="bob", session_id="private")
    forged = mine.model_copy(update={"user_id": "bob"})
    with pytest.raises(SessionNotFoundError):
        await service.append_event(forged, text_event("hijack"))
    got = await service.get_session(app_name=APP, user_id="ada", session_id="private")
    assert got is not None
    assert got.events == []
    assert got.state == {"secret": 1}


async def test_a_users_data_in_an_app_is_deleted_with_their_state(store: BaseSessionStore) -> None:
    service = SessionwareSessionService(SessionManager(store))
    for session_id in ("a", "b"):
        await service.create_session(app_name=APP, user_id="ada", session_id=session_id, state={"user:plan": "pro"})
    await service.create_session(app_name=APP, user_id="bob", session_id="a", state={"user:plan": "free"})
    await service.create_session(app_name="other_app", user_id="ada", session_id="a", state={"user:plan": "max"})
    assert await service.delete_user_data(app_name=APP, user_id="ada") == 2
    assert (await service.list_sessions(app_name=APP, user_id="ada")).sessions == []
    assert await service.get_user_state(app_name=APP, user_id="ada") == {}
    assert await service.get_user_state(app_name=APP, user_id="bob") == {"plan": "free"}, "other users keep theirs"
    assert await service.get_user_state(app_name="other_app", user_id="ada") == {"plan": "max"}, "other apps too"
    assert [s.id for s in (await service.list_sessions(app_name=APP)).sessions] == ["a"]


async def test_sessions_expire_and_are_purged(store: BaseSessionStore, advance: Advance) -> None:
    manager = SessionManager(store)
    service = SessionwareSessionService(manager, ttl=0.3)
    session = await service.create_session(app_name=APP, user_id="ada", session_id="brief")
    await service.append_event(session, text_event("hi"))
    assert (await service.get_session(app_name=APP, user_id="ada", session_id="brief")) is not None
    await advance(3 * 0.3)
    assert await service.get_session(app_name=APP, user_id="ada", session_id="brief") is None
    assert (await service.list_sessions(app_name=APP, user_id="ada")).sessions == []
    with pytest.raises(SessionNotFoundError):
        await service.append_event(session, text_event("late"))
    purged = await manager.purge_expired()
    if not isinstance(store, PurgeableStore):
        assert purged == 0
    elif not isinstance(store, InMemorySessionStore):  # memory sweeps expired keys as it writes
        assert purged >= 1
    # Nothing of the session is left: records and index entries purged (or swept, or expired by the server).
    assert [key async for key in store.scan("agent:")] == []  # type: ignore[attr-defined]
    again = await service.create_session(app_name=APP, user_id="ada", session_id="brief")
    assert again.events == [], "an expired session's id starts afresh"


async def test_bad_input_is_refused_by_name() -> None:
    manager = SessionManager()
    with pytest.raises(InvalidValueError, match="manager"):
        SessionwareSessionService(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="metadata"):
        SessionwareSessionService(manager, metadata={"adk_state": {}})
    service = SessionwareSessionService(manager)
    with pytest.raises(InvalidValueError, match="app_name"):
        await service.create_session(app_name="a\x1fb", user_id="ada")
    with pytest.raises(InvalidValueError, match="user_id"):
        await service.create_session(app_name=APP, user_id="")
    with pytest.raises(InvalidValueError, match="session_id"):
        await service.create_session(app_name=APP, user_id="ada", session_id="")
    with pytest.raises(InvalidValueError, match="state"):
        await service.create_session(app_name=APP, user_id="ada", state={"f": object()})
    assert (await service.list_sessions(app_name=APP)).sessions == [], "nothing was stored"


def run_workers(configs: list[dict[str, Any]]) -> list[str]:
    """Run one ``tests.adk_worker`` process per config, side by side; return what each printed."""
    return run_worker_processes("tests.adk_worker", configs)


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["redis", "postgres", "sqlite"], indirect=True)
async def test_four_processes_running_turns_of_one_session_never_interleave_or_lose_events(store_url: str) -> None:
    turns = 3
    manager = SessionManager(store_url)
    service = SessionwareSessionService(manager)
    try:
        await service.create_session(app_name=APP, user_id="ada", session_id="shared")
        config = {"url": store_url, "app": APP, "user": "ada", "session": "shared", "start_at": time.time() + 3}
        await asyncio.to_thread(run_workers, [{**config, "turns": turns, "worker": w} for w in range(4)])
        session = await service.get_session(app_name=APP, user_id="ada", session_id="shared")
    finally:
        await manager.close()
    assert session is not None
    events = session.events
    assert len(events) == 4 * 4 * turns, "no event lost"
    for g in range(4 * turns):
        user, call, response, answer = events[4 * g : 4 * g + 4]
        assert len({user.invocation_id, call.invocation_id, response.invocation_id, answer.invocation_id}) == 1
        assert answer.content.parts[0].text == f"saw {4 * g + 3}, n={g + 1}", f"turn {g} interleaved or stale"  # type: ignore[union-attr,index]
    prompts = sorted(str(e.content.parts[0].text) for e in events if e.author == "user")  # type: ignore[union-attr,index]
    assert prompts == sorted(f"w{w} t{t}" for w in range(4) for t in range(turns))
    assert session.state == {"n": 4 * turns, "user:total": 4 * turns, "app:total": 4 * turns}


def test_without_google_adk_the_integration_names_its_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['google.adk'] = None\n"
        "from sessionware import MissingExtraError\n"
        "try:\n"
        "    import sessionware.integrations.adk\n"
        "except MissingExtraError as e:\n"
        "    print(e.extra, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith("adk ")
    assert "pip install 'sessionware[adk]'" in done.stdout
