"""Sessions in tools: the seed's examples, the session middleware, the cross-session attack, recording."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from sessionware.agents import Session, SessionManager
from sessionware.store import BaseSessionStore
from sessionware.tools import (
    Decision,
    Invocation,
    Middleware,
    Policy,
    Tool,
    Toolbox,
    ToolConfig,
    ToolContext,
    ToolDefinitionError,
    ToolDenied,
    ToolResult,
    create_middleware,
    create_tool,
    create_toolbox,
    session_middleware,
    to_anthropic_tool_results,
    to_openai_chat_tool_messages,
)


@pytest.fixture
async def manager(store: BaseSessionStore) -> SessionManager:
    """A SessionManager on each real backend in turn."""
    return SessionManager(store)


class SessionArgs(BaseModel):
    session_id: str = Field(alias="sessionId")


class SessionAction(BaseModel):
    session_id: str = Field(alias="sessionId")
    action: str


class Amount(BaseModel):
    amount: int


# -- the seed's examples, line for line ------------------------------------------------------------


def session_aware_tool(toolbox: Toolbox, schema: type[BaseModel]) -> Tool[Any]:
    """The seed's ``session-aware-tool``: prints who performed which action, from the injected session."""

    async def execute(args: Any, context: ToolContext) -> dict[str, bool]:
        session: Session = context.session
        print(f"User {session.user_id} performed: {args.action}")
        return {"success": True}

    return create_tool(
        name="session-aware-tool",
        description="Access session automatically",
        schema=schema,
        execute=execute,
        toolbox=toolbox,
    )


async def test_seed_session_example(manager: SessionManager) -> None:
    # Create session-aware toolbox
    session_manager = manager

    async def before_execute(context: Invocation) -> dict[str, Any]:
        session_id = context.params.get("session_id")
        if not session_id:
            return {"allow": False, "reason": "Missing sessionId"}

        session = await session_manager.get_session(session_id)
        if not session:
            return {"allow": False, "reason": "Invalid session"}

        # Track tool invocation
        await session_manager.track_tool_invocation(session_id, context.tool_name)
        return {"allow": True}

    toolbox = create_toolbox(
        [],
        context={"session_manager": session_manager},
        policy={"before_execute": before_execute},
    )

    # Create session-aware tool
    async def execute(args: SessionArgs, context: ToolContext) -> Any:
        session_manager: SessionManager = context["session_manager"]
        session = await session_manager.get_session(args.session_id)
        return session.metadata.get("preferences", {}) if session else {}

    get_user_preferences = create_tool(
        name="get-user-preferences",
        description="Get user preferences from session",
        schema=SessionArgs,
        execute=execute,
        toolbox=toolbox,
    )

    # Usage
    session = await session_manager.create_session("user-123")
    await session_manager.update_session(session.id, metadata={"preferences": {"theme": "dark", "language": "en"}})

    result = await toolbox.execute(
        {
            "name": "get-user-preferences",
            "arguments": {"sessionId": session.id},
        }
    )

    assert toolbox.get("get-user-preferences") is get_user_preferences
    assert result.outcome == "success"
    assert result.result == {"theme": "dark", "language": "en"}
    [tracked] = await session_manager.tool_invocations(session.id)
    assert tracked.tool_name == "get-user-preferences"
    missing = await toolbox.execute({"name": "get-user-preferences", "arguments": {"sessionId": ""}})
    assert missing.outcome == "denied"
    assert missing.error is not None
    assert missing.error.message == "Missing sessionId"


async def test_seed_session_middleware_example(manager: SessionManager, capsys: pytest.CaptureFixture[str]) -> None:
    session_manager = manager

    # Usage
    toolbox = create_toolbox(
        [],
        middleware=[session_middleware(session_manager)],
    )

    tool = session_aware_tool(toolbox, SessionAction)

    session = await session_manager.create_session("user-123")
    result = await tool.execute(
        {"sessionId": session.id, "action": "export"},
        context={"user_id": "user-123", "session_id": session.id},
    )
    assert (result.outcome, result.result) == ("success", {"success": True})
    assert capsys.readouterr().out == "User user-123 performed: export\n"
    [record] = await session_manager.tool_invocations(session.id, user_id="user-123")
    assert (record.tool_name, record.status, record.call_id) == ("session-aware-tool", "success", result.id)
    assert record.arguments == {"sessionId": session.id, "action": "export"}


async def test_seed_create_middleware_example_wraps_execute_with_the_callers_session(
    manager: SessionManager, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's ``createSessionMiddleware``, in its own form: a function from a tool's configuration to a new one.

    One change, by the trusted-context rule: the session id comes from the
    call context (who is calling), never from the model's params.
    """
    session_manager = manager

    def create_session_middleware(session_manager: SessionManager) -> Middleware:
        def configure(tool_configuration: ToolConfig) -> ToolConfig | dict[str, Any]:
            original_execute = tool_configuration.execute

            async def execute(params: BaseModel, context: ToolContext) -> Any:
                # The session id (and its owner) come from the call context, not from params
                session_id = context.get("session_id")
                user_id = context.get("user_id")
                if not session_id or not user_id:
                    raise ToolDenied("Session ID required")

                session = await session_manager.get_session(session_id, user_id=user_id)
                if not session:
                    raise ToolDenied("Invalid session")

                # Inject session into context
                enhanced_context = context.with_values(session=session)

                return await original_execute(params, enhanced_context)

            return {**tool_configuration, "execute": execute}

        return create_middleware(configure)

    # Usage
    toolbox = create_toolbox(
        [],
        middleware=[create_session_middleware(session_manager)],
    )

    class SessionAwareArgs(BaseModel):
        action: str

    tool = session_aware_tool(toolbox, SessionAwareArgs)

    session = await session_manager.create_session("user-123")
    caller = {"user_id": "user-123", "session_id": session.id}
    result = await tool.execute({"action": "export"}, context=caller)
    assert (result.outcome, result.result) == ("success", {"success": True})
    assert capsys.readouterr().out == "User user-123 performed: export\n"
    assert toolbox.get("session-aware-tool") is tool

    anonymous = await toolbox.execute({"name": "session-aware-tool", "arguments": {"action": "export"}})
    assert anonymous.outcome == "denied"
    assert anonymous.error is not None
    assert anonymous.error.message == "Session ID required"
    intruder = await tool.execute({"action": "export"}, context={"user_id": "mallory", "session_id": session.id})
    assert intruder.outcome == "denied"
    assert intruder.error is not None
    assert intruder.error.message == "Invalid session"

    other = await session_manager.create_session("user-456")
    named = await toolbox.execute(
        {"name": "session-aware-tool", "arguments": {"action": "peek", "sessionId": other.id}}, context=caller
    )
    assert named.outcome == "success"
    assert capsys.readouterr().out == "User user-123 performed: peek\n", "the model's sessionId is never used"


# -- the attack ------------------------------------------------------------------------------------


async def attack_setup(manager: SessionManager) -> tuple[Toolbox, Session, Session, list[str]]:
    alice = await manager.create_session("alice", metadata={"preferences": {"theme": "light"}})
    bob = await manager.create_session("bob", metadata={"preferences": {"theme": "dark"}, "secret": "bob-token-42"})
    ran: list[str] = []
    toolbox = create_toolbox(middleware=[session_middleware(manager)])

    async def preferences(args: SessionArgs, context: ToolContext) -> Any:
        ran.append(args.session_id)
        return context.session.metadata.get("preferences", {})

    async def lookup(args: BaseModel, context: ToolContext) -> Any:
        ran.append("lookup")
        return dict(context.session.metadata)

    class Filter(BaseModel):
        filter: dict[str, Any]

    create_tool(
        name="get-user-preferences",
        description="Get preferences.",
        schema=SessionArgs,
        execute=preferences,
        toolbox=toolbox,
    )
    create_tool(name="lookup", description="Look up.", schema=Filter, execute=lookup, toolbox=toolbox)
    return toolbox, alice, bob, ran


def assert_leaks_nothing(result: ToolResult, bob: Session) -> None:
    texts = [
        result.model_dump_json(),
        repr(result),
        json.dumps(to_openai_chat_tool_messages([result])),
        json.dumps(to_anthropic_tool_results([result])),
    ]
    for text in texts:
        for secret in (bob.id, "bob-token-42", "dark", '"bob"'):
            assert secret not in text


async def test_attack_another_users_session_id_in_the_arguments_is_denied(manager: SessionManager) -> None:
    toolbox, alice, bob, ran = await attack_setup(manager)
    alice_context = {"user_id": "alice", "session_id": alice.id}

    own = await toolbox.execute(
        {"name": "get-user-preferences", "arguments": {"sessionId": alice.id}}, context=alice_context
    )
    assert (own.outcome, own.result) == ("success", {"theme": "light"})

    attack = await toolbox.execute(
        {"name": "get-user-preferences", "arguments": json.dumps({"sessionId": bob.id}), "id": "evil"},
        context=alice_context,
    )
    assert attack.outcome == "denied"
    assert attack.error is not None
    assert (attack.error.code, attack.error.category) == ("session_mismatch", "permission")
    assert attack.result is None
    assert_leaks_nothing(attack, bob)

    nested = await toolbox.execute(
        {"name": "lookup", "arguments": {"filter": {"where": [{"session_id": bob.id}]}}}, context=alice_context
    )
    assert nested.outcome == "denied"
    assert_leaks_nothing(nested, bob)

    assert ran == [alice.id], "the tool must never run for the attacking calls"
    bob_now = await manager.get_session(bob.id, user_id="bob")
    assert bob_now is not None
    assert bob_now.tool_invocation_count == 0
    assert bob_now.metadata == bob.metadata
    records = await manager.tool_invocations(alice.id, user_id="alice")
    assert [(r.tool_name, r.status) for r in records] == [
        ("get-user-preferences", "success"),
        ("get-user-preferences", "denied"),
        ("lookup", "denied"),
    ]
    assert records[1].call_id == "evil"
    assert records[1].error is not None
    assert records[1].error["code"] == "session_mismatch"


async def test_a_foreign_missing_or_malformed_bound_session_is_denied_alike(manager: SessionManager) -> None:
    toolbox, _alice, bob, ran = await attack_setup(manager)
    gone = await manager.create_session("alice")
    await manager.delete_session(gone.id)
    contexts: dict[str, dict[str, Any]] = {
        "foreign": {"user_id": "alice", "session_id": bob.id},
        "deleted": {"user_id": "alice", "session_id": gone.id},
        "malformed": {"user_id": "alice", "session_id": "../../bob"},
        "not a str": {"user_id": "alice", "session_id": 42},
    }
    messages = set()
    for context in contexts.values():
        result = await toolbox.execute({"name": "lookup", "arguments": {"filter": {}}}, context=context)
        assert result.outcome == "denied"
        assert result.error is not None
        assert result.error.code == "session_unavailable"
        assert_leaks_nothing(result, bob)
        messages.add(result.error.message)
    assert len(messages) == 1, "missing, foreign and malformed sessions must be indistinguishable"
    assert ran == []
    bob_now = await manager.get_session(bob.id)
    assert bob_now is not None
    assert bob_now.tool_invocation_count == 0


async def test_nothing_bound_is_denied_unless_sessions_are_optional() -> None:
    manager = SessionManager()
    session = await manager.create_session("u1")
    ran: list[str] = []

    def execute(args: Amount, context: ToolContext) -> str:
        ran.append("x")
        return "session" if "session" in context else "no session"

    strict_box = create_toolbox(middleware=[session_middleware(manager)])
    create_tool(name="pay", description="Pay.", schema=Amount, execute=execute, toolbox=strict_box)
    no_session = await strict_box.execute({"name": "pay", "arguments": {"amount": 1}}, context={"user_id": "u1"})
    assert no_session.error is not None
    assert (no_session.outcome, no_session.error.code) == ("denied", "session_required")
    no_user = await strict_box.execute({"name": "pay", "arguments": {"amount": 1}}, context={"session_id": session.id})
    assert no_user.error is not None
    assert (no_user.outcome, no_user.error.code) == ("denied", "user_required")
    assert ran == []

    lenient = create_toolbox(middleware=[session_middleware(manager, require_session=False)])
    create_tool(name="pay", description="Pay.", schema=Amount, execute=execute, toolbox=lenient)
    anonymous = await lenient.execute({"name": "pay", "arguments": {"amount": 1}})
    assert anonymous.result == "no session"
    sneaky = await lenient.execute({"name": "pay", "arguments": {"amount": 1, "sessionId": session.id}})
    assert sneaky.error is not None
    assert (sneaky.outcome, sneaky.error.code) == ("denied", "session_mismatch")
    assert ran == ["x"]
    with pytest.raises(ToolDefinitionError, match="SessionManager"):
        session_middleware(object())  # type: ignore[arg-type]


# -- recording ------------------------------------------------------------------------------------


async def test_every_outcome_is_recorded_after_the_call(manager: SessionManager) -> None:
    session = await manager.create_session("carol")
    seen_by_policy: list[str] = []

    def before(invocation: Invocation) -> Decision:
        seen_by_policy.append(invocation.context.session.user_id)
        amount = invocation.params["amount"]
        if amount < 0:
            return Decision.deny("negative amounts are refused")
        if amount > 100:
            return Decision.needs_approval("large payment")
        return Decision.allow()

    async def pay(args: Amount, context: ToolContext) -> dict[str, int]:
        if args.amount == 13:
            raise RuntimeError("card declined")
        await asyncio.sleep(0.01)
        return {"paid": args.amount}

    toolbox = create_toolbox(middleware=[session_middleware(manager)], policy=Policy(before_execute=before))
    create_tool(name="pay", description="Pay.", schema=Amount, execute=pay, toolbox=toolbox)
    context = {"user_id": "carol", "session_id": session.id}
    calls: list[dict[str, Any]] = [
        {"name": "pay", "arguments": {"amount": 5}, "id": "ok"},
        {"name": "pay", "arguments": {"amount": 13}, "id": "fails"},
        {"name": "pay", "arguments": '{"amount": ', "id": "bad-json"},
        {"name": "pay", "arguments": {"amount": -1}, "id": "denied"},
        {"name": "pay", "arguments": {"amount": 500}, "id": "approval"},
        {"name": "missing-tool", "arguments": {}, "id": "unknown"},
    ]
    results = {r.id: r for r in await toolbox.execute(calls, context=context, parallel=False)}
    assert [r.outcome for r in results.values()] == ["success", "error", "error", "denied", "action_required", "error"]
    assert seen_by_policy == ["carol", "carol", "carol", "carol"]

    records = {r.call_id: r for r in await manager.tool_invocations(session.id, user_id="carol")}
    assert list(records) == ["ok", "fails", "bad-json", "denied", "approval"], "unknown tools never reach a tool"
    ok = records["ok"]
    assert (ok.status, ok.arguments, ok.result, ok.error) == ("success", {"amount": 5}, {"paid": 5}, None)
    assert ok.duration is not None
    assert ok.duration >= 0.009
    assert abs((ok.started_at - results["ok"].started_at).total_seconds()) < 0.001
    fails = records["fails"]
    assert fails.status == "error"
    assert fails.error is not None
    assert (fails.error["code"], fails.error["message"]) == ("tool_failed", "RuntimeError: card declined")
    bad_json = records["bad-json"]
    assert (bad_json.status, bad_json.arguments) == ("error", '{"amount": ')
    assert bad_json.error is not None
    assert bad_json.error["category"] == "validation"
    denied = records["denied"]
    assert denied.status == "denied"
    assert denied.error is not None
    assert denied.error["message"] == "negative amounts are refused"
    approval = records["approval"]
    assert approval.status == "action_required"
    assert approval.result == {"action_required": {"kind": "approval", "reason": "large payment", "details": {}}}
    for call_id, record in records.items():
        assert record.duration is not None
        assert 0 <= record.duration <= results[call_id].duration, "recorded before the call's end"


async def test_a_failed_recording_keeps_the_value_and_says_so() -> None:
    manager = SessionManager()
    session = await manager.create_session("dave")

    async def close_account(args: BaseModel, context: ToolContext) -> str:
        await manager.delete_session(context.session.id)
        return "account closed"

    class NoArgs(BaseModel):
        pass

    toolbox = create_toolbox(middleware=[session_middleware(manager)])
    create_tool(name="close", description="Close.", schema=NoArgs, execute=close_account, toolbox=toolbox)
    result = await toolbox.execute({"name": "close"}, context={"user_id": "dave", "session_id": session.id})
    assert result.outcome == "error"
    assert result.result == "account closed"
    assert result.error is not None
    assert (result.error.code, result.error.details) == ("record_failed", {"tool_outcome": "success"})
    assert result.error.retryable is False
    assert result.exception is not None


async def test_results_without_a_json_form_are_recorded_without_their_value() -> None:
    manager = SessionManager()
    session = await manager.create_session("erin")
    marker = object()

    class NoArgs(BaseModel):
        pass

    toolbox = create_toolbox(middleware=[session_middleware(manager)])
    create_tool(name="obj", description="D.", schema=NoArgs, execute=lambda a, c: marker, toolbox=toolbox)
    create_tool(name="nan", description="D.", schema=NoArgs, execute=lambda a, c: float("nan"), toolbox=toolbox)
    context = {"user_id": "erin", "session_id": session.id}
    for name in ("obj", "nan"):
        result = await toolbox.execute({"name": name}, context=context)
        assert result.outcome == "success"
    assert (await toolbox.execute({"name": "obj"}, context=context)).result is marker
    records = await manager.tool_invocations(session.id)
    assert [(r.status, r.result) for r in records] == [("success", None)] * 3


async def test_one_toolbox_serves_many_users_and_each_sees_only_their_session() -> None:
    manager = SessionManager()
    users = [f"user-{i}" for i in range(20)]
    sessions = {user: await manager.create_session(user, metadata={"owner": user}) for user in users}
    toolbox = create_toolbox(middleware=[session_middleware(manager)])

    @create_tool(toolbox=toolbox)
    async def whoami(context: ToolContext) -> str:
        """Say whose session this is."""
        await asyncio.sleep(0)
        session: Session = context.session
        return f"{session.user_id}:{session.metadata['owner']}"

    async def run(user: str) -> list[ToolResult]:
        context = {"user_id": user, "session_id": sessions[user].id}
        return await toolbox.execute([{"name": "whoami"}] * 3, context=context)

    all_results = await asyncio.gather(*(run(user) for user in users))
    for user, results in zip(users, all_results, strict=True):
        assert [r.result for r in results] == [f"{user}:{user}"] * 3
        session = await manager.get_session(sessions[user].id, user_id=user)
        assert session is not None
        assert session.tool_invocation_count == 3


async def test_the_snapshot_window_is_configurable_and_recording_can_be_off() -> None:
    manager = SessionManager()
    session = await manager.create_session("fay")
    await manager.add_message(session.id, "user", "hello")
    seen: list[int] = []

    class NoArgs(BaseModel):
        pass

    def count(args: NoArgs, context: ToolContext) -> None:
        seen.append(len(context.session.conversation_history))

    toolbox = create_toolbox(middleware=[session_middleware(manager, history=0, record=False)])
    create_tool(name="count", description="D.", schema=NoArgs, execute=count, toolbox=toolbox)
    await toolbox.execute({"name": "count"}, context={"user_id": "fay", "session_id": session.id})
    assert seen == [0]
    assert await manager.tool_invocations(session.id) == []
