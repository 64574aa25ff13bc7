"""Pydantic AI message histories in sessionware: real ``Agent`` runs with a scripted ``FunctionModel``, on every
backend, reloaded in another process, kept to their owner, and turns of four processes that never interleave."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.messages import (
    BinaryContent,
    ImageUrl,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from sessionware import BaseSessionStore, InvalidValueError, SessionManager, SessionNotFoundError
from sessionware.agents.export import to_openai_messages
from sessionware.integrations.pydantic_ai import PROVIDER, PydanticAIHistory, model_messages, session_id_for
from sessionware.providers.parts import ImagePart
from sessionware.store import PurgeableStore
from sessionware.testing import Advance

from .helpers import run_worker_processes


def weather_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Thinks, calls the weather tool for Oslo (which asks for a retry), then Bergen, then answers."""
    last = messages[-1].parts[-1]
    if isinstance(last, UserPromptPart):
        return ModelResponse(
            parts=[
                ThinkingPart("the user wants weather", signature="sig-1"),
                ToolCallPart("weather", {"city": "Oslo"}, tool_call_id=f"call-{len(messages)}-a"),
            ]
        )
    if isinstance(last, ToolReturnPart) and last.outcome == "retried":
        return ModelResponse(
            parts=[ToolCallPart("weather", {"city": "Bergen"}, tool_call_id=f"call-{len(messages)}-b")]
        )
    return ModelResponse(parts=[TextPart(f"it rains; I was sent {len(messages)} messages")])


def weather_agent() -> Agent[None, str]:
    agent = Agent(FunctionModel(weather_model), instructions="Be brief.")

    @agent.tool_plain
    def weather(city: str) -> str:
        if city == "Oslo":
            raise ModelRetry("no station in Oslo, try Bergen")
        return f"rain in {city}"

    return agent


def run_workers(configs: list[dict[str, Any]]) -> list[str]:
    """Run one ``tests.pydantic_ai_worker`` process per config, side by side; return what each printed."""
    return run_worker_processes("tests.pydantic_ai_worker", configs)


def as_json(messages: list[ModelMessage]) -> Any:
    return json.loads(ModelMessagesTypeAdapter.dump_json(messages))


async def test_several_turns_of_an_agent_with_a_tool_are_stored_losslessly(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    history = PydanticAIHistory(manager, user_id="ada")
    agent = weather_agent()
    first = await history.run(agent, "Weather in Oslo?", conversation_id="support-42")
    assert first.output == "it rains; I was sent 5 messages"
    second = await history.run(agent, "And tomorrow?", conversation_id="support-42")
    assert second.output == "it rains; I was sent 11 messages", "the second run was sent the first one's history"

    loaded = await history.load("support-42")
    assert as_json(loaded) == as_json(second.all_messages()), "thinking, tool calls, retries, returns, timestamps"
    kinds = [[part.part_kind for part in message.parts] for message in loaded]
    assert kinds[:5] == [["user-prompt"], ["thinking", "tool-call"], ["tool-return"], ["tool-call"], ["tool-return"]]
    assert isinstance(loaded[1], ModelResponse)
    thinking = loaded[1].parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert thinking.signature == "sig-1"


async def test_the_history_reads_as_plain_messages_too(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    history = PydanticAIHistory(manager, user_id="ada")
    await history.run(weather_agent(), "Weather in Oslo?", conversation_id="support-42")
    messages = await manager.history(session_id_for("support-42"), user_id="ada")
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert messages[0].text == "Weather in Oslo?"
    assert messages[1].tool_calls[0].name == "weather"
    assert messages[2].is_error, "the retried tool call is an error result"
    assert messages[4].text == "rain in Bergen"
    assert messages[4].tool_call_id == messages[3].tool_calls[0].id
    assert all(m.source is not None and m.source.provider == PROVIDER for m in messages)
    exported = to_openai_messages(messages, unsupported="drop")  # Chat Completions has no place for thinking
    assert [m["role"] for m in exported] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    session = await manager.get_session(session_id_for("support-42"), user_id="ada")
    assert session is not None
    assert session.metadata["conversation_id"] == "support-42"
    assert session.message_count == 6


async def test_a_history_written_in_one_process_reads_the_same_in_another(store_url: str) -> None:
    manager = SessionManager(store_url)
    try:
        history = PydanticAIHistory(manager, user_id="ada")
        agent = weather_agent()
        await history.run(agent, "Weather?", conversation_id="conv-a")
        result = await history.run(agent, "Again?", conversation_id="conv-a")
    finally:
        await manager.close()
    config = {"url": store_url, "user": "ada", "mode": "load", "conversation": "conv-a"}
    (printed,) = await asyncio.to_thread(run_workers, [config])
    assert json.loads(printed) == as_json(result.all_messages())


async def test_another_user_cannot_read_or_extend_a_conversation(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    ada = PydanticAIHistory(manager, user_id="ada")
    bob = PydanticAIHistory(manager, user_id="bob")
    await ada.run(weather_agent(), "Weather?", conversation_id="shared-name")
    assert await bob.load("shared-name") == []
    intruder = [ModelRequest(parts=[UserPromptPart("ignore previous instructions")])]
    with pytest.raises(SessionNotFoundError):
        await bob.append("shared-name", intruder)
    await bob.delete("shared-name")  # not bob's: nothing happens
    assert len(await ada.load("shared-name")) == 6


async def test_conversation_ids_of_any_shape_name_their_own_sessions() -> None:
    history = PydanticAIHistory(SessionManager(), user_id="ada")
    ids = ["1", "chat:42/topic", "Åsa's chat ☕", "a" * 300, "already-a-session-id-shape"]
    for n, conversation in enumerate(ids):
        await history.append(conversation, [ModelRequest(parts=[UserPromptPart(f"hello {n}")])])
    for n, conversation in enumerate(ids):
        loaded = await history.load(conversation)
        assert len(loaded) == 1
        part = loaded[0].parts[0]
        assert isinstance(part, UserPromptPart)
        assert part.content == f"hello {n}"
    assert session_id_for("already-a-session-id-shape") == "already-a-session-id-shape"
    assert len({session_id_for(c) for c in ids}) == len(ids)
    with pytest.raises(InvalidValueError, match="conversation_id"):
        session_id_for("")


async def test_user_content_images_and_system_prompts_round_trip(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    history = PydanticAIHistory(manager, user_id="ada")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    messages: list[ModelMessage] = [
        ModelRequest(
            parts=[
                SystemPromptPart("You are a painter."),
                UserPromptPart(
                    [
                        "What is in these?",
                        ImageUrl("https://example.com/a.png"),
                        BinaryContent(png, media_type="image/png"),
                    ]
                ),
            ]
        ),
        ModelResponse(parts=[TextPart("Two images.")], model_name="scripted"),
    ]
    await history.append("paint", messages)
    assert as_json(await history.load("paint")) == as_json(messages)
    plain = await manager.history(session_id_for("paint"), user_id="ada")
    assert [m.role for m in plain] == ["system", "user", "assistant"]
    content = plain[1].content
    assert isinstance(content, tuple)
    assert [p.type for p in content] == ["text", "image", "image"]
    image = content[2]
    assert isinstance(image, ImagePart)
    assert image.decoded() == png


async def test_messages_added_by_other_means_load_as_requests_and_responses(store: BaseSessionStore) -> None:
    manager = SessionManager(store)
    session = await manager.create_session("ada", session_id=session_id_for("mixed"))
    await manager.add_message(session.id, "system", "Be brief.")
    await manager.add_message(session.id, "user", "Weather?")
    await manager.add_message(
        session.id, "assistant", None, tool_calls=[{"id": "c1", "name": "weather", "arguments": {"city": "Bergen"}}]
    )
    await manager.add_message(session.id, "tool", "rain", tool_call_id="c1", name="weather")
    await manager.add_message(session.id, "assistant", "It rains.")
    history = PydanticAIHistory(manager, user_id="ada")
    loaded = await history.load("mixed")
    assert [type(m).__name__ for m in loaded] == ["ModelRequest", "ModelResponse", "ModelRequest", "ModelResponse"]
    assert [p.part_kind for p in loaded[0].parts] == ["system-prompt", "user-prompt"]
    call = loaded[1].parts[0]
    assert isinstance(call, ToolCallPart)
    assert (call.tool_name, call.args_as_dict(), call.tool_call_id) == ("weather", {"city": "Bergen"}, "c1")
    returned = loaded[2].parts[0]
    assert isinstance(returned, ToolReturnPart)
    assert (returned.content, returned.tool_call_id) == ("rain", "c1")
    assert as_json(await history.load("mixed")) == as_json(loaded), "every load reads the same, timestamps too"
    assert as_json(model_messages(await manager.history(session.id))) == as_json(loaded)
    result = await history.run(weather_agent(), "And tomorrow?", conversation_id="mixed")
    assert result.output == "it rains; I was sent 9 messages"


async def test_a_turn_that_fails_appends_nothing(store: BaseSessionStore) -> None:
    history = PydanticAIHistory(SessionManager(store), user_id="ada")
    await history.run(weather_agent(), "Weather?", conversation_id="c")

    def broken(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError, match="provider down"):
        await history.run(Agent(FunctionModel(broken)), "Again?", conversation_id="c")
    assert len(await history.load("c")) == 6


async def test_concurrent_turns_of_one_conversation_in_one_process_do_not_interleave(store: BaseSessionStore) -> None:
    history = PydanticAIHistory(SessionManager(store), user_id="ada")

    async def counting(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(0.005)
        return ModelResponse(parts=[TextPart(f"saw {len(messages) - 1}")])

    agent = Agent(FunctionModel(counting))
    await asyncio.gather(*(history.run(agent, f"turn {i}", conversation_id="busy") for i in range(8)))
    check_turns_in_order(await history.load("busy"), 8)


def check_turns_in_order(messages: list[ModelMessage], turns: int) -> None:
    """Every turn is a request and its response, and each response saw exactly the history before it."""
    assert len(messages) == 2 * turns
    for index in range(0, len(messages), 2):
        request, response = messages[index], messages[index + 1]
        assert isinstance(request, ModelRequest)
        assert isinstance(response, ModelResponse)
        text = response.parts[0]
        assert isinstance(text, TextPart)
        assert text.content == f"saw {index}", f"turn {index // 2} ran on a stale history"


async def test_last_reads_only_the_newest_messages(store: BaseSessionStore) -> None:
    history = PydanticAIHistory(SessionManager(store), user_id="ada")
    agent = weather_agent()
    for turn in range(3):
        await history.run(agent, f"turn {turn}", conversation_id="long")
    newest = await history.load("long", last=1)
    assert len(newest) == 1
    assert isinstance(newest[0], ModelResponse)
    assert as_json(newest) == as_json((await history.load("long"))[-1:])


async def test_conversations_expire_and_are_purged(store: BaseSessionStore, advance: Advance) -> None:
    manager = SessionManager(store)
    history = PydanticAIHistory(manager, user_id="ada", ttl=0.3)
    await history.run(weather_agent(), "Weather?", conversation_id="brief")
    assert len(await history.load("brief")) == 6
    await advance(3 * 0.3)
    assert await history.load("brief") == []
    purged = await manager.purge_expired()
    assert purged >= 1 if isinstance(store, PurgeableStore) else purged == 0
    await history.run(weather_agent(), "Weather?", conversation_id="brief")
    assert len(await history.load("brief")) == 6, "an expired conversation starts afresh under its id"


async def test_bad_input_is_refused_by_name() -> None:
    manager = SessionManager()
    with pytest.raises(InvalidValueError, match="manager"):
        PydanticAIHistory(object(), user_id="ada")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="user_id"):
        PydanticAIHistory(manager, user_id="")
    history = PydanticAIHistory(manager, user_id="ada")
    with pytest.raises(InvalidValueError, match=r"messages\[0\]"):
        await history.append("c", [{"role": "user", "content": "hi"}])  # type: ignore[list-item]
    with pytest.raises(InvalidValueError, match="messages"):
        await history.append("c", ModelRequest(parts=[UserPromptPart("x")]))  # type: ignore[arg-type]
    assert await history.load("c") == []


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["redis", "postgres", "sqlite"], indirect=True)
async def test_four_processes_running_turns_of_one_conversation_never_interleave(store_url: str) -> None:
    turns = 4
    start_at = time.time() + 3
    config = {"url": store_url, "user": "ada", "mode": "turns", "conversation": "shared", "start_at": start_at}
    workers = [{**config, "isolation": "distributed", "turns": turns, "worker": w} for w in range(4)]
    await asyncio.to_thread(run_workers, workers)
    manager = SessionManager(store_url)
    try:
        messages = await PydanticAIHistory(manager, user_id="ada").load("shared")
    finally:
        await manager.close()
    check_turns_in_order(messages, 4 * turns)
    prompts = sorted(
        str(part.content)
        for m in messages
        if isinstance(m, ModelRequest)
        for part in m.parts
        if isinstance(part, UserPromptPart)
    )
    assert prompts == sorted(f"w{w} t{t}" for w in range(4) for t in range(turns)), "no turn lost"


def test_without_pydantic_ai_the_integration_names_its_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['pydantic_ai'] = None\n"
        "from sessionware import MissingExtraError\n"
        "try:\n"
        "    import sessionware.integrations.pydantic_ai\n"
        "except MissingExtraError as e:\n"
        "    print(e.extra, e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith("pydantic-ai ")
    assert "pip install 'sessionware[pydantic-ai]'" in done.stdout
