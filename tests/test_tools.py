"""The toolbox: registration, outcomes, validation, timeouts, context, policy, middleware, hooks, batches."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

import sessionware
from sessionware.agents import Message, SessionManager
from sessionware.agents import ToolCall as AgentsToolCall
from sessionware.errors import InvalidValueError, SessionwareError
from sessionware.providers import ToolCall as ProvidersToolCall
from sessionware.tools import (
    CallNext,
    Decision,
    Invocation,
    Middleware,
    Policy,
    Tool,
    ToolCall,
    ToolConfig,
    ToolContext,
    ToolDefinitionError,
    ToolDenied,
    ToolError,
    ToolEvent,
    ToolResult,
    ToolTimeoutError,
    create_middleware,
    create_tool,
    create_toolbox,
    from_openai_chat_tool_calls,
    to_openai_chat_tools,
    with_context,
)


class Add(BaseModel):
    a: int
    b: int


class Item(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class Order(BaseModel):
    customer: str
    items: list[Item]
    note: str | None = None


class Empty(BaseModel):
    pass


def add(args: Add, context: ToolContext) -> int:
    return args.a + args.b


def make_adder(**options: Any):
    return create_tool(name="add", description="Add two integers.", schema=Add, execute=add, **options)


# -- creating and registering --------------------------------------------------------------------


async def test_create_tool_with_toolbox_registers_it_and_direct_execute_goes_through_the_toolbox() -> None:
    seen: list[str] = []
    toolbox = create_toolbox(context={"greeting": "hi"}, policy=Policy(before_execute=lambda inv: seen.append("p")))

    def greet(args: Empty, context: ToolContext) -> str:
        return str(context.greeting)

    tool = create_tool(name="greet", description="Say hi.", schema=Empty, execute=greet, toolbox=toolbox)
    assert "greet" in toolbox
    assert toolbox.get("greet") is tool
    assert tool.toolbox is toolbox
    result = await tool.execute()
    assert (result.outcome, result.result) == ("success", "hi")
    assert seen == ["p"]
    via_box = await toolbox.execute({"name": "greet", "arguments": {}})
    assert via_box.result == "hi"


async def test_tools_list_registers_without_a_home_and_standalone_tools_run_alone() -> None:
    tool = make_adder()
    toolbox = create_toolbox([tool])
    assert [t.name for t in toolbox] == ["add"]
    assert len(toolbox) == 1
    assert tool.toolbox is None
    standalone = await tool.execute({"a": 2, "b": 3}, id="c1")
    assert (standalone.id, standalone.name, standalone.outcome, standalone.result) == ("c1", "add", "success", 5)


def test_registration_refuses_duplicates_unless_replaced() -> None:
    toolbox = create_toolbox([make_adder()])
    other = make_adder()
    with pytest.raises(ToolDefinitionError, match="already registered"):
        toolbox.register(other)
    toolbox.register(other, replace=True)
    assert toolbox.get("add") is other
    assert toolbox.unregister("add") is other
    with pytest.raises(ToolDefinitionError, match="no tool named 'add'"):
        toolbox.unregister("add")
    with pytest.raises(ToolDefinitionError, match="only a Tool"):
        toolbox.register("add")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "has space"}, "not valid"),
        ({"name": "9lives"}, "not valid"),
        ({"name": "x" * 65}, "not valid"),
        ({"description": "  "}, "non-empty description"),
        ({"schema": dict}, "pydantic model class"),
        ({"execute": 42}, "callable"),
        ({"timeout": 0}, "positive"),
        ({"timeout": float("inf")}, "positive"),
        ({"tags": "abc"}, "not a str"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(options: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"name": "ok", "description": "Fine.", "schema": Add, "execute": add}
    fields.update(options)
    with pytest.raises(ToolDefinitionError, match=message) as info:
        create_tool(**fields)
    assert isinstance(info.value, SessionwareError)
    assert isinstance(info.value, ValueError)


def test_create_tool_names_missing_arguments() -> None:
    with pytest.raises(ToolDefinitionError, match=r"missing description=, execute="):
        create_tool(name="x", schema=Add)  # type: ignore[call-overload]


def test_schema_must_describe_an_object() -> None:
    from pydantic import RootModel

    with pytest.raises(ToolDefinitionError, match="JSON object"):
        create_tool(name="r", description="Root.", schema=RootModel[list[int]], execute=add)


def test_parameters_are_the_json_schema_by_alias_without_the_root_title() -> None:
    class Args(BaseModel):
        session_id: str = Field(alias="sessionId", description="Which session")

    tool = create_tool(name="t", description="T.", schema=Args, execute=lambda a, c: None)
    parameters = tool.parameters()
    assert parameters["type"] == "object"
    assert "title" not in parameters
    assert parameters["properties"]["sessionId"]["description"] == "Which session"
    parameters["properties"].clear()
    assert tool.parameters()["properties"], "parameters() must return a copy"


async def test_no_call_can_change_the_context_the_next_call_sees() -> None:
    caller = {"user": {"role": "viewer", "teams": ["a"]}}
    toolbox = create_toolbox(context={"account": {"role": "viewer", "limits": [1, 2], "flags": {"beta"}}})
    attempts: list[str] = []

    @create_tool(toolbox=toolbox)
    async def escalate(*, context: ToolContext) -> str:
        """Try to change the context."""
        changes: list[tuple[str, Callable[[], object]]] = [
            ("nested dict", lambda: context.account.__setitem__("role", "admin")),
            ("nested list", lambda: context.account["limits"].append(99)),
            ("nested set", lambda: context.account["flags"].add("admin")),
            ("per-call dict", lambda: context.user.__setitem__("role", "admin")),
            ("per-call list", lambda: context.user["teams"].append("root")),
        ]
        for name, change in changes:
            try:
                change()
            except (TypeError, AttributeError):
                attempts.append(f"{name} refused")
        return str(context.account["role"])

    first = await toolbox.execute({"name": "escalate", "arguments": {}}, context=caller)
    second = await toolbox.execute({"name": "escalate", "arguments": {}}, context=caller)
    assert first.result == second.result == "viewer"
    assert (
        attempts
        == [
            f"{name} refused" for name in ("nested dict", "nested list", "nested set", "per-call dict", "per-call list")
        ]
        * 2
    )
    assert caller == {"user": {"role": "viewer", "teams": ["a"]}}, "the caller's own dict is left as it was"


# -- the decorator form ---------------------------------------------------------------------------


async def test_decorator_derives_schema_description_and_passes_context() -> None:
    toolbox = create_toolbox(context={"unit": "kg"})

    @create_tool(toolbox=toolbox, tags=["shop"], metadata={"cost": 1})
    async def weigh(
        item: Annotated[str, Field(description="What to weigh")],
        count: int = 1,
        *,
        context: ToolContext,
    ) -> str:
        """Weigh some items.

        Returns the total weight.
        """
        await asyncio.sleep(0)
        return f"{count} x {item} in {context.unit}"

    assert toolbox.get("weigh") is weigh
    assert weigh.description.startswith("Weigh some items.")
    assert weigh.tags == {"shop"}
    assert weigh.metadata == {"cost": 1}
    parameters = weigh.parameters()
    assert parameters["required"] == ["item"]
    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["item"]["description"] == "What to weigh"
    assert "context" not in parameters["properties"]
    result = await toolbox.execute({"name": "weigh", "arguments": {"item": "apple", "count": 3}})
    assert result.result == "3 x apple in kg"
    extra = await toolbox.execute({"name": "weigh", "arguments": {"item": "apple", "colour": "red"}})
    assert extra.error is not None
    assert extra.error.details["issues"] == [
        {"path": "colour", "message": "Extra inputs are not permitted", "type": "extra_forbidden"}
    ]


async def test_bare_decorator_on_a_sync_function_with_a_typed_context() -> None:
    @create_tool
    def shout(text: str, ctx: ToolContext) -> str:
        """Upper-case the text."""
        return text.upper() + str(ctx.get("suffix", ""))

    assert shout.name == "shout"
    result = await shout.execute({"text": "hey"}, context={"suffix": "!"})
    assert result.result == "HEY!"


def test_decorator_refuses_what_cannot_become_a_schema() -> None:
    def untyped(x):
        """Doc."""

    def varargs(*xs: int) -> None:
        """Doc."""

    def undocumented(x: int) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match="needs a type annotation"):
        create_tool(untyped)
    with pytest.raises(ToolDefinitionError, match=r"\*xs"):
        create_tool(varargs)
    with pytest.raises(ToolDefinitionError, match="needs a description"):
        create_tool(undocumented)
    assert create_tool(description="Given here.")(undocumented).description == "Given here."
    with pytest.raises(ToolDefinitionError, match="do not pass schema"):
        create_tool(undocumented, schema=Add)  # type: ignore[call-overload]


async def test_execute_with_one_parameter_or_a_keyword_context() -> None:
    only_args = create_tool(name="one", description="D.", schema=Add, execute=lambda args: args.a)

    def keyword(args: Add, *, context: ToolContext) -> Any:
        return context["k"]

    by_keyword = create_tool(name="kw", description="D.", schema=Add, execute=keyword)
    toolbox = create_toolbox([only_args, by_keyword], context={"k": "v"})
    assert (await toolbox.execute({"name": "one", "arguments": {"a": 7, "b": 0}})).result == 7
    assert (await toolbox.execute({"name": "kw", "arguments": {"a": 7, "b": 0}})).result == "v"
    with pytest.raises(ToolDefinitionError, match="must take the arguments"):
        create_tool(name="none", description="D.", schema=Add, execute=lambda: None)


# -- outcomes -------------------------------------------------------------------------------------


async def test_success_result_carries_id_name_value_and_timing() -> None:
    toolbox = create_toolbox([make_adder()])
    result = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}, "id": "call-1"})
    assert isinstance(result, ToolResult)
    assert (result.id, result.name, result.outcome, result.result, result.error) == (
        "call-1",
        "add",
        "success",
        3,
        None,
    )
    assert result.ok
    assert result.duration > 0
    assert result.started_at.tzinfo is not None
    generated = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}})
    assert generated.id.startswith("call_")
    assert generated.id != result.id
    dumped = json.loads(result.model_dump_json())
    assert dumped["result"] == 3
    assert "exception" not in dumped
    assert "_exception" not in dumped


async def test_unknown_tool_is_not_found() -> None:
    toolbox = create_toolbox([make_adder()])
    result = await toolbox.execute({"name": "subtract", "arguments": {}, "id": "x"})
    assert (result.outcome, result.id, result.name) == ("error", "x", "subtract")
    assert result.error is not None
    assert (result.error.code, result.error.category) == ("not_found", "not_found")
    assert "subtract" in result.error.message
    assert result.error.details["available"] == ["add"]


@pytest.mark.parametrize("arguments", ['{"a": 1, "b": ', "", "not json", "{'a': 1}"])
async def test_malformed_json_arguments_are_a_validation_error_and_never_run(arguments: str) -> None:
    ran: list[object] = []
    tool = create_tool(name="t", description="D.", schema=Empty, execute=lambda a, c: ran.append(a))
    toolbox = create_toolbox([tool])
    result = await toolbox.execute({"name": "t", "arguments": arguments})
    assert result.outcome == "error"
    assert result.error is not None
    assert (result.error.code, result.error.category) == ("invalid_json", "validation")
    [issue] = result.error.details["issues"]
    assert issue["path"] == "$"
    assert issue["message"].startswith("not valid JSON")
    assert ran == [], "a tool with an all-optional schema must not run on garbage arguments"


@pytest.mark.parametrize(("arguments", "kind"), [("[1, 2]", "an array"), ("3", "a number"), ('"s"', "a string")])
async def test_json_that_is_not_an_object_is_a_validation_error(arguments: str, kind: str) -> None:
    toolbox = create_toolbox([make_adder()])
    result = await toolbox.execute({"name": "add", "arguments": arguments})
    assert result.error is not None
    assert result.error.category == "validation"
    assert result.error.details["issues"][0]["message"] == f"arguments must be a JSON object, not {kind}"


async def test_valid_json_string_arguments_are_accepted() -> None:
    toolbox = create_toolbox([make_adder()])
    result = await toolbox.execute({"name": "add", "arguments": '{"a": 4, "b": 5}'})
    assert result.result == 9


async def test_validation_error_lists_each_field_path_and_message() -> None:
    tool = create_tool(name="order", description="Place an order.", schema=Order, execute=lambda a, c: "ok")
    toolbox = create_toolbox([tool])
    arguments = {"items": [{"sku": "a", "qty": 1}, {"sku": 5, "qty": 0}]}
    result = await toolbox.execute({"name": "order", "arguments": arguments})
    assert result.outcome == "error"
    assert result.error is not None
    assert (result.error.code, result.error.category, result.error.retryable) == (
        "invalid_arguments",
        "validation",
        False,
    )
    issues = {issue["path"]: issue for issue in result.error.details["issues"]}
    assert set(issues) == {"customer", "items[1].sku", "items[1].qty"}
    assert issues["customer"]["message"] == "Field required"
    assert issues["items[1].qty"]["type"] == "greater_than"
    for path in issues:
        assert path in result.error.message


@pytest.mark.parametrize(
    ("call", "path"),
    [
        ({"arguments": {}}, "name"),
        ({"name": ""}, "name"),
        ({"name": "add", "id": 7}, "id"),
        ({"name": "add", "arguments": [1]}, "arguments"),
    ],
)
async def test_malformed_calls_are_validation_errors(call: dict[str, Any], path: str) -> None:
    toolbox = create_toolbox([make_adder()])
    result = await toolbox.execute(call)
    assert result.outcome == "error"
    assert result.error is not None
    assert result.error.code == "invalid_call"
    assert [i["path"] for i in result.error.details["issues"]] == [path]


async def test_a_call_that_is_not_a_mapping_is_refused_in_a_result() -> None:
    toolbox = create_toolbox([make_adder()])
    [result] = await toolbox.execute([42])  # type: ignore[list-item]
    assert result.error is not None
    assert result.error.code == "invalid_call"
    with pytest.raises(ToolDefinitionError, match="a call"):
        await toolbox.execute("add")  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="context must be a mapping"):
        await toolbox.execute({"name": "add"}, context=["user"])  # type: ignore[call-overload]


async def test_a_tool_that_raises_is_an_execution_error_with_the_exception() -> None:
    def boom(args: Empty, context: ToolContext) -> None:
        raise ValueError("bad input value")

    toolbox = create_toolbox([create_tool(name="boom", description="D.", schema=Empty, execute=boom)])
    result = await toolbox.execute({"name": "boom"})
    assert result.outcome == "error"
    assert result.error is not None
    assert (result.error.code, result.error.category, result.error.retryable) == ("tool_failed", "execution", False)
    assert result.error.message == "ValueError: bad input value"
    assert result.error.details == {"exception": "ValueError", "stage": "tool"}
    assert isinstance(result.exception, ValueError)


async def test_tool_error_and_tool_denied_keep_their_fields() -> None:
    def flaky(args: Empty, context: ToolContext) -> None:
        raise ToolError("upstream busy", code="busy", category="unavailable", retryable=True, details={"after": 2})

    def guarded(args: Empty, context: ToolContext) -> None:
        raise ToolDenied("only admins", code="admin_only")

    toolbox = create_toolbox(
        [
            create_tool(name="flaky", description="D.", schema=Empty, execute=flaky),
            create_tool(name="guarded", description="D.", schema=Empty, execute=guarded),
        ]
    )
    flaky_result = await toolbox.execute({"name": "flaky"})
    assert flaky_result.error is not None
    assert flaky_result.error.model_dump() == {
        "code": "busy",
        "category": "unavailable",
        "message": "upstream busy",
        "retryable": True,
        "details": {"after": 2},
    }
    denied = await toolbox.execute({"name": "guarded"})
    assert denied.outcome == "denied"
    assert denied.error is not None
    assert (denied.error.code, denied.error.message) == ("admin_only", "only admins")


# -- timeouts and cancellation --------------------------------------------------------------------


async def test_timeout_cancels_the_running_tool() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()
    finished: list[bool] = []

    async def slow(args: Empty, context: ToolContext) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finished.append(True)
        return "done"

    tool = create_tool(name="slow", description="D.", schema=Empty, execute=slow, timeout=0.05)
    result = await create_toolbox([tool]).execute({"name": "slow"})
    assert started.is_set()
    assert cancelled.is_set(), "the tool's task must receive CancelledError"
    assert finished == []
    assert result.outcome == "error"
    assert result.error is not None
    assert (result.error.code, result.error.category, result.error.retryable) == ("timeout", "timeout", True)
    assert result.error.details == {"timeout": 0.05}
    assert "cancelled" in result.error.message


async def test_a_tool_without_a_toolbox_runs_alone_under_its_own_timeout() -> None:
    async def slow(args: Empty, context: ToolContext) -> str:
        await asyncio.sleep(30)
        return "done"

    tool = create_tool(name="slow", description="D.", schema=Empty, execute=slow, timeout=0.02)
    result = await tool.execute()
    assert result.error is not None
    assert (result.outcome, result.error.code, result.error.details) == ("error", "timeout", {"timeout": 0.02})
    assert isinstance(result.exception, ToolTimeoutError)
    assert isinstance(result.exception, TimeoutError)
    bad = await make_adder().execute('{"a": 1')
    assert bad.error is not None
    assert (bad.outcome, bad.error.code) == ("error", "invalid_json")
    with pytest.raises(ToolDefinitionError, match="must be a mapping"):
        await make_adder().execute({"a": 1, "b": 2}, context=42)


async def test_toolbox_timeout_applies_unless_the_tool_sets_its_own() -> None:
    async def nap(args: Empty, context: ToolContext) -> str:
        await asyncio.sleep(0.2)
        return "rested"

    short = create_tool(name="short", description="D.", schema=Empty, execute=nap)
    patient = create_tool(name="patient", description="D.", schema=Empty, execute=nap, timeout=5)
    toolbox = create_toolbox([short, patient], timeout=0.02)
    first = await toolbox.execute({"name": "short"})
    assert first.error is not None
    assert first.error.category == "timeout"
    second = await toolbox.execute({"name": "patient"})
    assert second.result == "rested"


async def test_a_tools_own_timeout_error_is_not_reported_as_our_deadline() -> None:
    async def upstream(args: Empty, context: ToolContext) -> None:
        raise TimeoutError("upstream took too long")

    toolbox = create_toolbox([create_tool(name="up", description="D.", schema=Empty, execute=upstream)], timeout=5)
    result = await toolbox.execute({"name": "up"})
    assert result.error is not None
    assert result.error.category == "timeout"
    assert result.error.details["stage"] == "tool"
    assert "upstream took too long" in result.error.message


async def test_cancelling_the_caller_propagates_instead_of_becoming_a_result() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def wait(args: Empty, context: ToolContext) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    toolbox = create_toolbox([create_tool(name="wait", description="D.", schema=Empty, execute=wait)])
    task = asyncio.create_task(toolbox.execute({"name": "wait"}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


# -- context --------------------------------------------------------------------------------------


async def test_context_layers_toolbox_then_bound_then_per_call() -> None:
    seen: dict[str, Any] = {}

    def look(args: Empty, context: ToolContext) -> dict[str, Any]:
        return dict(context)

    def policy(invocation: Invocation) -> None:
        seen["policy"] = dict(invocation.context)

    async def middleware(invocation: Invocation, call_next: CallNext) -> ToolResult:
        seen["middleware"] = dict(invocation.context)
        return await call_next(invocation)

    base = create_tool(name="look", description="D.", schema=Empty, execute=look)
    bound = with_context(base, region="eu", level="tool")
    assert base.context == {}, "with_context must not change the original tool"
    toolbox = create_toolbox(
        [bound],
        context={"level": "toolbox", "db": "main", "region": "us"},
        policy=Policy(before_execute=policy),
        middleware=[create_middleware(middleware)],
    )
    result = await toolbox.execute({"name": "look"}, context={"level": "call", "user_id": "u1"})
    expected = {"level": "call", "db": "main", "region": "eu", "user_id": "u1"}
    assert result.result == expected
    assert seen == {"policy": expected, "middleware": expected}
    assert toolbox.context == {"level": "toolbox", "db": "main", "region": "us"}


async def test_context_reaches_decorated_tools_and_attribute_access_fails_clearly() -> None:
    toolbox = create_toolbox(context={"tenant": "acme"})

    @create_tool(toolbox=toolbox)
    def whoami(context: ToolContext) -> str:
        """Say who is calling."""
        return f"{context.tenant}/{context.user_id}"

    @create_tool(toolbox=toolbox)
    def missing(context: ToolContext) -> str:
        """Read a value that is not there."""
        return str(context.nothing_here)

    assert (await toolbox.execute({"name": "whoami"}, context={"user_id": "u9"})).result == "acme/u9"
    result = await toolbox.execute({"name": "missing"})
    assert result.error is not None
    assert "no value 'nothing_here'" in result.error.message


def test_tool_context_is_read_only_and_layers() -> None:
    context = ToolContext({"a": 1}, {"b": 2}, c=3)
    assert dict(context) == {"a": 1, "b": 2, "c": 3}
    assert context.a == 1
    assert context["b"] == 2
    assert len(context) == 3
    layered = context.with_values({"a": 10}, d=4)
    assert dict(layered) == {"a": 10, "b": 2, "c": 3, "d": 4}
    assert context.a == 1
    with pytest.raises(TypeError):
        context["a"] = 2
    with pytest.raises(ToolDefinitionError, match="keys must be str"):
        ToolContext({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ToolDefinitionError, match="must be a mapping"):
        create_toolbox(context=[("a", 1)])  # type: ignore[arg-type]


async def test_one_toolbox_serves_many_users_concurrently() -> None:
    async def whoami(args: Empty, context: ToolContext) -> str:
        for _ in range(3):
            await asyncio.sleep(0)
        return str(context["user_id"])

    def policy(invocation: Invocation) -> Decision:
        if invocation.context["user_id"].endswith("7"):
            return Decision.deny("users ending in 7 are blocked")
        return Decision.allow()

    toolbox = create_toolbox(
        [create_tool(name="whoami", description="D.", schema=Empty, execute=whoami)], policy=policy
    )
    users = [f"user-{i}" for i in range(60)]
    results = await asyncio.gather(
        *(toolbox.execute({"name": "whoami", "id": f"c-{u}"}, context={"user_id": u}) for u in users)
    )
    for user, result in zip(users, results, strict=True):
        assert result.id == f"c-{user}"
        if user.endswith("7"):
            assert result.outcome == "denied"
        else:
            assert (result.outcome, result.result) == ("success", user)


# -- policy ---------------------------------------------------------------------------------------


def counting_tool(ran: list[str]) -> Any:
    def execute(args: Add, context: ToolContext) -> int:
        ran.append("tool")
        return args.a + args.b

    return create_tool(
        name="add", description="Add.", schema=Add, execute=execute, tags=["math"], metadata={"risk": "low"}
    )


async def test_before_execute_sees_tool_arguments_metadata_and_caller() -> None:
    seen: list[Any] = []

    def before(invocation: Invocation) -> Decision:
        seen.append(
            (
                invocation.tool_name,
                invocation.tool.name,
                invocation.params,
                invocation.arguments,
                dict(invocation.metadata),
                invocation.tags,
                invocation.context["user_id"],
                invocation.id,
            )
        )
        return Decision.allow()

    ran: list[str] = []
    toolbox = create_toolbox([counting_tool(ran)], policy=Policy(before_execute=before))
    await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}, "id": "c"}, context={"user_id": "u"})
    assert seen == [("add", "add", {"a": 1, "b": 2}, Add(a=1, b=2), {"risk": "low"}, frozenset({"math"}), "u", "c")]


@pytest.mark.parametrize(
    ("decision", "reason"),
    [
        (Decision.deny("not today"), "not today"),
        ({"allow": False, "reason": "seed style"}, "seed style"),
        ({"allow": False}, "denied by policy"),
        (False, "denied by policy"),
    ],
)
async def test_denial_returns_denied_with_the_reason_and_never_runs_the_tool(decision: Any, reason: str) -> None:
    ran: list[str] = []

    async def before(invocation: Invocation) -> Any:
        return decision

    toolbox = create_toolbox([counting_tool(ran)], policy=Policy(before_execute=before))
    result = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}})
    assert result.outcome == "denied"
    assert result.error is not None
    assert (result.error.category, result.error.message) == ("permission", reason)
    assert ran == []


@pytest.mark.parametrize("decision", [Decision.allow(), {"allow": True}, True, None])
async def test_allow_forms(decision: Any) -> None:
    ran: list[str] = []
    toolbox = create_toolbox([counting_tool(ran)], policy={"before_execute": lambda inv: decision})
    assert (await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 1}})).result == 2
    assert ran == ["tool"]


async def test_needs_approval_and_needs_input_are_action_required() -> None:
    ran: list[str] = []

    def before(invocation: Invocation) -> Decision:
        if invocation.context.get("approved"):
            return Decision.allow()
        if invocation.params["a"] > 100:
            return Decision.needs_approval("large amounts need a manager", details={"limit": 100})
        return Decision.needs_input("which currency?")

    toolbox = create_toolbox([counting_tool(ran)], policy=Policy(before_execute=before))
    big = await toolbox.execute({"name": "add", "arguments": {"a": 500, "b": 1}})
    assert big.outcome == "action_required"
    assert big.action is not None
    assert big.action.model_dump() == {
        "kind": "approval",
        "reason": "large amounts need a manager",
        "details": {"limit": 100},
    }
    small = await toolbox.execute({"name": "add", "arguments": {"a": 5, "b": 1}})
    assert small.action is not None
    assert small.action.kind == "input"
    assert ran == []
    approved = await toolbox.execute({"name": "add", "arguments": {"a": 500, "b": 1}}, context={"approved": True})
    assert approved.result == 501


async def test_a_failing_or_confused_policy_fails_closed() -> None:
    ran: list[str] = []

    def raises(invocation: Invocation) -> None:
        raise RuntimeError("policy backend down")

    toolbox = create_toolbox([counting_tool(ran)], policy=raises)
    result = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 1}})
    assert result.error is not None
    assert (result.outcome, result.error.category, result.error.code) == ("error", "internal", "internal_error")
    assert "policy backend down" in result.error.message
    confused = create_toolbox([counting_tool(ran)], policy=Policy(before_execute=lambda inv: "yes"))
    result = await confused.execute({"name": "add", "arguments": {"a": 1, "b": 1}})
    assert result.error is not None
    assert result.error.code == "invalid_decision"
    assert ran == []


async def test_after_execute_sees_every_outcome_and_may_replace_the_result() -> None:
    outcomes: list[str] = []

    def before(invocation: Invocation) -> Decision:
        return Decision.deny("no") if invocation.params["a"] < 0 else Decision.allow()

    def after(invocation: Invocation, result: ToolResult) -> ToolResult | None:
        outcomes.append(result.outcome)
        if result.ok:
            return result.replace(result={"sum": result.result})
        return None

    toolbox = create_toolbox([counting_tool([])], policy=Policy(before, after))
    ok = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}})
    denied = await toolbox.execute({"name": "add", "arguments": {"a": -1, "b": 2}})
    invalid = await toolbox.execute({"name": "add", "arguments": "{"})
    assert ok.result == {"sum": 3}
    assert (denied.outcome, invalid.outcome) == ("denied", "error")
    assert outcomes == ["success", "denied", "error"]


async def test_policy_objects_and_lists_first_refusal_wins() -> None:
    calls: list[str] = []

    class Audit:
        async def before_execute(self, invocation: Invocation) -> None:
            calls.append("audit")

        def after_execute(self, invocation: Invocation, result: ToolResult) -> None:
            calls.append(f"audit-after:{result.outcome}")

    def deny(invocation: Invocation) -> dict[str, Any]:
        calls.append("deny")
        return {"allow": False, "reason": "blocked"}

    def never(invocation: Invocation) -> None:
        calls.append("never")

    toolbox = create_toolbox([counting_tool([])], policy=[Audit(), deny, never])
    result = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}})
    assert result.outcome == "denied"
    assert calls == ["audit", "deny", "audit-after:denied"]
    with pytest.raises(ToolDefinitionError, match="unknown policy keys"):
        create_toolbox(policy={"beforeExecute": deny})
    with pytest.raises(ToolDefinitionError, match="cannot use int"):
        create_toolbox(policy=3)


# -- middleware -----------------------------------------------------------------------------------


def tracer(name: str, log: list[str]) -> Any:
    async def middleware(invocation: Invocation, call_next: CallNext) -> ToolResult:
        log.append(f"{name}>")
        result = await call_next(invocation.with_context(path=[*invocation.context.get("path", []), name]))
        log.append(f"<{name}:{result.outcome}")
        return result

    return create_middleware(middleware, name=name)


async def test_middleware_order_is_onion_with_the_first_listed_outermost() -> None:
    log: list[str] = []

    def execute(args: Empty, context: ToolContext) -> list[str]:
        log.append("tool")
        return list(context.path)

    def before(invocation: Invocation) -> None:
        log.append("before_execute")

    def after(invocation: Invocation, result: ToolResult) -> None:
        log.append("after_execute")

    toolbox = create_toolbox(
        [create_tool(name="t", description="D.", schema=Empty, execute=execute)],
        policy=Policy(before, after),
        middleware=[tracer("a", log), tracer("b", log), tracer("c", log)],
    )
    result = await toolbox.execute({"name": "t"})
    assert result.result == ["a", "b", "c"]
    assert log == [
        "a>",
        "b>",
        "c>",
        "before_execute",
        "tool",
        "after_execute",
        "<c:success",
        "<b:success",
        "<a:success",
    ]
    log.clear()
    toolbox.use(tracer("d", log))
    await toolbox.execute({"name": "t"})
    assert log[:5] == ["a>", "b>", "c>", "d>", "before_execute"]


async def test_middleware_can_short_circuit_and_outer_middleware_still_sees_a_result() -> None:
    log: list[str] = []

    async def gate(invocation: Invocation, call_next: CallNext) -> ToolResult:
        if invocation.context.get("user_id") is None:
            return invocation.deny("sign in first", code="anonymous")
        return await call_next(invocation)

    async def explode(invocation: Invocation, call_next: CallNext) -> ToolResult:
        raise ToolError("quota exceeded", code="quota", retryable=True)

    ran: list[str] = []
    toolbox = create_toolbox(
        [counting_tool(ran)], middleware=[tracer("outer", log), gate, tracer("inner", log), explode]
    )
    anonymous = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 1}})
    assert anonymous.outcome == "denied"
    assert anonymous.error is not None
    assert anonymous.error.code == "anonymous"
    assert log == ["outer>", "<outer:denied"]
    log.clear()
    signed_in = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 1}}, context={"user_id": "u"})
    assert signed_in.error is not None
    assert (signed_in.error.code, signed_in.error.retryable) == ("quota", True)
    assert log == ["outer>", "inner>", "<inner:error", "<outer:error"]
    assert ran == []


async def test_middleware_errors_and_bad_returns_become_internal_errors() -> None:
    async def crash(invocation: Invocation, call_next: CallNext) -> ToolResult:
        raise KeyError("oops")

    async def wrong(invocation: Invocation, call_next: CallNext) -> Any:
        await call_next(invocation)
        return "not a result"

    crashing = create_toolbox([counting_tool([])], middleware=[crash])
    result = await crashing.execute({"name": "add", "arguments": {"a": 1, "b": 1}})
    assert result.error is not None
    assert (result.error.category, result.error.details["stage"]) == ("internal", "middleware 'crash'")
    assert isinstance(result.exception, KeyError)
    wrong_box = create_toolbox([counting_tool([])], middleware=[wrong])
    result = await wrong_box.execute({"name": "add", "arguments": {"a": 1, "b": 1}})
    assert result.error is not None
    assert result.error.code == "invalid_middleware_result"
    with pytest.raises(ToolDefinitionError):
        create_toolbox(middleware=[42])


async def test_middleware_sees_invalid_calls_and_can_replace_arguments() -> None:
    seen: list[Any] = []

    async def watch(invocation: Invocation, call_next: CallNext) -> ToolResult:
        seen.append((invocation.arguments, invocation.raw_arguments, invocation.error is not None))
        if invocation.arguments is not None:
            invocation = invocation.with_arguments(Add(a=invocation.params["a"], b=100))
        return await call_next(invocation)

    toolbox = create_toolbox([counting_tool([])], middleware=[watch])
    bad = await toolbox.execute({"name": "add", "arguments": '{"a": 1'})
    good = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}})
    assert bad.outcome == "error"
    assert good.result == 101
    assert seen == [(None, '{"a": 1', True), (Add(a=1, b=2), {"a": 1, "b": 2}, False)]


# -- middleware: the configuration form -----------------------------------------------------------


def describe(suffix: str, log: list[str] | None = None) -> Any:
    def configure(config: ToolConfig) -> ToolConfig:
        if log is not None:
            log.append(f"{suffix}:{config.name}")
        return config.replace(description=f"{config.description} {suffix}")

    return configure


def test_the_form_is_read_from_the_signature_and_ambiguity_is_refused() -> None:
    async def call_form(invocation: Invocation, call_next: CallNext) -> ToolResult:
        return await call_next(invocation)

    def config_form(config: ToolConfig) -> ToolConfig:
        return config

    def either(*args: Any) -> Any:
        return args

    def one_or_two(config: Any, call_next: Any = None) -> Any:
        return config

    called = create_middleware(call_form)
    configured = create_middleware(config_form, name="same")
    assert (called.wraps_calls, called.configures_tools) == (True, False)
    assert (configured.wraps_calls, configured.configures_tools, configured.name) == (False, True, "same")
    for ambiguous in (either, one_or_two):
        with pytest.raises(ToolDefinitionError, match="form='config' or form='call'"):
            create_middleware(ambiguous)
    assert create_middleware(either, form="config").configures_tools
    assert create_middleware(one_or_two, form="call").wraps_calls
    with pytest.raises(ToolDefinitionError, match=r"must take \(invocation, call_next\) or a tool configuration"):
        create_middleware(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="required keyword-only"):
        create_middleware(lambda config, *, strict: config)  # type: ignore[arg-type]

    async def async_config(config: ToolConfig) -> ToolConfig:
        return config

    with pytest.raises(ToolDefinitionError, match="must be a plain function"):
        create_middleware(async_config)  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="form must be"):
        create_middleware(config_form, form="both")  # type: ignore[arg-type]
    assert create_middleware(configured) is configured
    renamed = create_middleware(configured, name="other")
    assert (renamed.name, renamed.configures_tools, renamed.wraps_calls) == ("other", True, False)
    with pytest.raises(ToolDefinitionError, match="Middleware already"):
        create_middleware(configured, form="config")


async def test_a_config_middleware_wraps_execute_once_per_tool_not_per_call() -> None:
    configured: list[str] = []
    log: list[str] = []

    def audited(config: ToolConfig) -> dict[str, Any]:
        configured.append(config.name)
        original = config.execute

        async def execute(args: Add, context: ToolContext) -> Any:
            log.append(f"before {args.a}+{args.b} for {context.get('user_id')}")
            value = await original(args, context)
            log.append(f"after {value}")
            return value * 10

        return {**config, "execute": execute}

    toolbox = create_toolbox(
        middleware=[audited, tracer("outer", log)],
        policy=Policy(before_execute=lambda invocation: log.append("policy")),
    )
    tool = create_tool(name="add", description="Add two integers.", schema=Add, execute=add, toolbox=toolbox)
    assert toolbox.get("add") is tool
    assert configured == ["add"]
    first = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}}, context={"user_id": "u"})
    second = await tool.execute({"a": 2, "b": 2})
    assert (first.result, second.result) == (30, 40)
    assert configured == ["add"], "configured once, at registration"
    assert log[:5] == ["outer>", "policy", "before 1+2 for u", "after 3", "<outer:success"]
    rejected = await toolbox.execute({"name": "add", "arguments": {"a": "x", "b": 2}})
    assert rejected.outcome == "error"
    assert log[-1] == "<outer:error", "invalid arguments never reach the wrapped execute"


async def test_a_wrapped_execute_runs_under_the_tool_timeout_and_its_errors_are_results() -> None:
    def slow_down(config: ToolConfig) -> ToolConfig:
        original = config.execute

        async def execute(args: Add, context: ToolContext) -> Any:
            if args.a < 0:
                raise ToolDenied("negative numbers are not allowed", code="negative")
            await asyncio.sleep(args.a)
            return await original(args, context)

        return config.replace(execute=execute, timeout=0.05)

    toolbox = create_toolbox([make_adder()], middleware=[slow_down])
    assert toolbox.get("add") is not None
    assert toolbox.get("add").timeout == 0.05  # type: ignore[union-attr]
    quick = await toolbox.execute({"name": "add", "arguments": {"a": 0, "b": 2}})
    slow = await toolbox.execute({"name": "add", "arguments": {"a": 5, "b": 2}})
    denied = await toolbox.execute({"name": "add", "arguments": {"a": -1, "b": 2}})
    assert quick.result == 2
    assert slow.error is not None
    assert slow.error.code == "timeout"
    assert denied.error is not None
    assert (denied.outcome, denied.error.code) == ("denied", "negative")


async def test_a_config_middleware_changes_what_the_toolbox_lists_exports_and_policies_see() -> None:
    seen: list[Any] = []

    def tag(config: ToolConfig) -> ToolConfig:
        return config.replace(
            description=f"{config.description} Read-only.",
            tags=config.tags | {"read-only"},
            metadata={**config.metadata, "audited": True},
        )

    toolbox = create_toolbox(
        middleware=[create_middleware(tag, name="tag")],
        policy=Policy(before_execute=lambda invocation: seen.append((invocation.metadata, invocation.tags))),
    )
    original = make_adder(metadata={"owner": "maths"})
    registered = toolbox.register(original)
    assert registered is not original
    assert original.description == "Add two integers."
    assert registered.description == "Add two integers. Read-only."
    assert toolbox.get("add") is registered
    assert [t.name for t in toolbox.select(tags=["read-only"])] == ["add"]
    assert to_openai_chat_tools(toolbox)[0]["function"]["description"] == "Add two integers. Read-only."
    assert toolbox.register(original) is registered, "registering the same tool again is a no-op"
    assert (await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 1}})).result == 2
    assert seen == [({"owner": "maths", "audited": True}, frozenset({"read-only"}))]


def test_config_middleware_run_in_the_order_listed_and_keep_what_they_do_not_change() -> None:
    log: list[str] = []

    def untouched(config: ToolConfig) -> ToolConfig:
        log.append("untouched")
        return config

    toolbox = create_toolbox(middleware=[describe("(a)", log), untouched, describe("(b)", log)])
    tool = create_tool(name="add", description="Add.", schema=Add, execute=add, toolbox=toolbox, timeout=3)
    assert tool.description == "Add. (a) (b)"
    assert log == ["(a):add", "untouched", "(b):add"]
    assert (tool.schema, tool.timeout, tool.tags) == (Add, 3.0, frozenset())
    plain = create_toolbox([make_adder()], middleware=[untouched])
    assert plain.get("add") is not None
    assert plain.get("add").description == "Add two integers."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("configure", "message"),
    [
        (lambda config: None, "returned NoneType; return a ToolConfig"),
        (lambda config: 42, "returned int"),
        (lambda config: {**config, "colour": "red"}, "has no 'colour'"),
        (lambda config: {1: "x"}, "keys that are not str"),
        (lambda config: config.replace(description=" "), "non-empty description"),
        (lambda config: {**config, "execute": "not callable"}, "execute must be callable"),
        (lambda config: config.replace(name="renamed"), "cannot rename a tool"),
        (lambda config: config.replace(schema=dict), "pydantic model class"),
        (lambda config: config.replace(execute=lambda: None), "execute must take the arguments"),
        (lambda config: config.missing, "raised AttributeError"),
    ],
)
def test_a_bad_configuration_is_a_definition_error_naming_the_middleware_and_tool(configure: Any, message: str) -> None:
    toolbox = create_toolbox(middleware=[create_middleware(configure, name="broken", form="config")])
    with pytest.raises(ToolDefinitionError, match=message) as info:
        create_tool(name="add", description="Add.", schema=Add, execute=add, toolbox=toolbox)
    assert "'broken'" in str(info.value)
    assert "'add'" in str(info.value)
    assert "add" not in toolbox


def test_a_config_middleware_that_returns_an_awaitable_is_refused() -> None:
    async def configure(config: ToolConfig) -> ToolConfig:
        return config

    toolbox = create_toolbox(middleware=[Middleware(configure=configure, name="sneaky")])  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="'sneaky' on tool 'add' returned an awaitable"):
        toolbox.register(make_adder())


async def test_use_configures_the_registered_tools_and_older_references_run_the_current_version() -> None:
    toolbox = create_toolbox()
    tool = create_tool(name="add", description="Add.", schema=Add, execute=add, toolbox=toolbox)
    bound = with_context(tool, user_id="bound")

    def times_hundred(config: ToolConfig) -> ToolConfig:
        original = config.execute

        async def execute(args: Add, context: ToolContext) -> Any:
            return (await original(args, context)) * 100, context.get("user_id")

        return config.replace(execute=execute)

    toolbox.use(times_hundred)
    current = toolbox.get("add")
    assert current is not None
    assert current is not tool
    assert current.same_tool(tool)
    assert bound.same_tool(tool)
    assert (await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 1}})).result == (200, None)
    assert (await tool.execute({"a": 1, "b": 2})).result == (300, None)
    assert (await bound.execute({"a": 1, "b": 3})).result == (400, "bound")
    later = create_tool(name="later", description="Later.", schema=Add, execute=add, toolbox=toolbox)
    assert (await later.execute({"a": 2, "b": 2})).result == (400, None)
    stranger = Tool(name="add", description="Add.", schema=Add, execute=add, toolbox=toolbox, context={"user_id": "s"})
    assert (await stranger.execute({"a": 0, "b": 1})).result == (100, "s"), "unregistered tools are configured too"

    def broken(config: ToolConfig) -> ToolConfig:
        if config.name == "later":
            raise RuntimeError("no")
        return config.replace(description="Changed.")

    with pytest.raises(ToolDefinitionError, match="raised RuntimeError"):
        toolbox.use(broken)
    assert toolbox.get("add") is current, "a failing use() changes no tool"
    assert (await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 1}})).result == (200, None)


def test_tool_config_is_a_checked_read_only_mapping() -> None:
    tool = make_adder(tags=["maths"], metadata={"owner": "x"}, timeout=2)
    config = tool.config
    assert dict(config) == {
        "name": "add",
        "description": "Add two integers.",
        "schema": Add,
        "execute": tool.run,
        "tags": frozenset({"maths"}),
        "metadata": {"owner": "x"},
        "timeout": 2.0,
    }
    assert config == tool.config
    assert {**config}["name"] == "add"
    with pytest.raises(KeyError):
        config["context"]
    with pytest.raises(AttributeError):
        config.name = "other"
    with pytest.raises(TypeError):
        config.metadata["owner"] = "y"
    changed = config.replace(tags=["a", "b"], timeout=1)
    assert (changed.tags, changed.timeout) == (frozenset({"a", "b"}), 1.0)
    with pytest.raises(ToolDefinitionError, match="positive"):
        config.replace(timeout=-1)
    copy = tool.with_config(changed)
    assert (copy.tags, copy.timeout, copy.toolbox, copy.context) == (frozenset({"a", "b"}), 1.0, None, {})
    with pytest.raises(ToolDefinitionError, match="needs a ToolConfig"):
        tool.with_config({"name": "add"})


# -- hooks ----------------------------------------------------------------------------------------


async def test_hooks_report_call_completion_denial_and_error_with_timings(caplog: pytest.LogCaptureFixture) -> None:
    events: list[ToolEvent] = []
    toolbox = create_toolbox(
        [counting_tool([])], policy=lambda inv: Decision.deny("neg") if inv.params["a"] < 0 else None
    )
    for kind in ("call", "success", "error", "denied", "action_required", "complete"):
        toolbox.on(kind, events.append)

    async def async_hook(event: ToolEvent) -> None:
        await asyncio.sleep(0)
        events.append(event)

    remove = toolbox.on("complete", async_hook)

    def broken(event: ToolEvent) -> None:
        raise RuntimeError("logger down")

    toolbox.on("call", broken)
    with caplog.at_level(logging.ERROR, logger="sessionware.tools"):
        await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}, "id": "ok"}, context={"user_id": "u"})
    assert "logger down" in caplog.text
    await toolbox.execute({"name": "add", "arguments": {"a": -1, "b": 2}, "id": "no"})
    await toolbox.execute({"name": "nope", "id": "nf"})
    remove()
    await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}, "id": "late"})
    summary = [(e.type, e.call.id) for e in events]
    assert summary == [
        ("call", "ok"),
        ("success", "ok"),
        ("complete", "ok"),
        ("complete", "ok"),
        ("call", "no"),
        ("denied", "no"),
        ("complete", "no"),
        ("complete", "no"),
        ("call", "nf"),
        ("error", "nf"),
        ("complete", "nf"),
        ("complete", "nf"),
        ("call", "late"),
        ("success", "late"),
        ("complete", "late"),
    ]
    first_call, first_success = events[0], events[1]
    assert first_call.duration is None
    assert first_call.result is None
    assert first_call.context["user_id"] == "u"
    assert first_call.tool_name == "add"
    assert first_success.duration is not None
    assert first_success.duration > 0
    assert first_success.result is not None
    assert first_success.result.duration == first_success.duration
    assert first_success.started_at == first_call.started_at
    with pytest.raises(ToolDefinitionError, match="unknown tool event"):
        toolbox.on("finish", events.append)  # type: ignore[arg-type]


async def test_result_duration_includes_middleware_time() -> None:
    async def slow_middleware(invocation: Invocation, call_next: CallNext) -> ToolResult:
        result = await call_next(invocation)
        await asyncio.sleep(0.05)
        return result

    toolbox = create_toolbox([counting_tool([])], middleware=[slow_middleware])
    result = await toolbox.execute({"name": "add", "arguments": {"a": 1, "b": 2}})
    assert result.duration >= 0.045


# -- batches --------------------------------------------------------------------------------------


def batch_toolbox(log: list[str], running: list[int], peak: list[int]) -> Any:
    async def work(args: Any, context: ToolContext) -> str:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        log.append(f"start {args.label}")
        try:
            await asyncio.sleep(0.01)
        finally:
            running[0] -= 1
        if args.label.startswith("fail"):
            raise ValueError(args.label)
        log.append(f"end {args.label}")
        return str(args.label)

    class Label(BaseModel):
        label: str

    return create_toolbox([create_tool(name="work", description="D.", schema=Label, execute=work)])


def calls(*labels: str) -> list[dict[str, Any]]:
    return [{"name": "work", "arguments": {"label": label}, "id": label} for label in labels]


async def test_parallel_batch_respects_the_concurrency_limit_and_keeps_order() -> None:
    log: list[str] = []
    running, peak = [0], [0]
    toolbox = batch_toolbox(log, running, peak)
    results = await toolbox.execute(calls(*(f"c{i}" for i in range(10))), concurrency=3)
    assert [r.result for r in results] == [f"c{i}" for i in range(10)]
    assert peak[0] == 3


async def test_sequential_batch_runs_one_at_a_time_and_collects_errors() -> None:
    log: list[str] = []
    running, peak = [0], [0]
    toolbox = batch_toolbox(log, running, peak)
    results = await toolbox.execute(calls("a", "fail-b", "c"), parallel=False)
    assert [r.outcome for r in results] == ["success", "error", "success"]
    assert peak[0] == 1
    assert log == ["start a", "end a", "start fail-b", "start c", "end c"]


async def test_stop_on_error_skips_the_rest_in_order() -> None:
    log: list[str] = []
    running, peak = [0], [0]
    toolbox = batch_toolbox(log, running, peak)
    results = await toolbox.execute(calls("a", "fail-b", "c", "d"), parallel=False, stop_on_error=True)
    assert [r.outcome for r in results] == ["success", "error", "error", "error"]
    assert [r.id for r in results] == ["a", "fail-b", "c", "d"]
    skipped = results[2].error
    assert skipped is not None
    assert (skipped.code, skipped.category, skipped.details) == ("skipped", "cancelled", {"stopped_by": "fail-b"})
    assert "start c" not in log


async def test_parallel_stop_on_error_lets_running_calls_finish_and_skips_unstarted_ones() -> None:
    log: list[str] = []
    running, peak = [0], [0]
    toolbox = batch_toolbox(log, running, peak)
    results = await toolbox.execute(calls("fail-a", "b", "c", "d", "e"), concurrency=2, stop_on_error=True)
    assert [r.outcome for r in results] == ["error", "success", "error", "error", "error"]
    assert "end b" in log
    assert all(r.error is not None and r.error.code == "skipped" for r in results[2:])
    with pytest.raises(ToolDefinitionError, match="concurrency"):
        await toolbox.execute(calls("a"), concurrency=0)


async def test_a_batch_accepts_tool_call_objects_and_an_empty_list() -> None:
    toolbox = create_toolbox([make_adder()])
    assert await toolbox.execute([]) == []
    [result] = await toolbox.execute([ToolCall(name="add", arguments={"a": 1, "b": 1}, id="x")])
    assert (result.id, result.result) == ("x", 2)


def test_literal_schemas_survive() -> None:
    class Pick(BaseModel):
        model_config = ConfigDict(extra="forbid")
        colour: Literal["red", "blue"]

    tool = create_tool(name="pick", description="Pick.", schema=Pick, execute=lambda a, c: a.colour)
    assert tool.parameters()["properties"]["colour"]["enum"] == ["red", "blue"]


# -- one ToolCall for both surfaces ---------------------------------------------------------------


def test_one_tool_call_class_serves_the_toolbox_the_history_and_the_providers() -> None:
    assert ToolCall is AgentsToolCall is ProvidersToolCall
    text = '{"a": 1,  "b": 2}'
    call = ToolCall(name="add", arguments=text, id="c1")
    assert (call.arguments, call.arguments_text, call.raw_arguments) == ({"a": 1, "b": 2}, text, text)
    assert call.arguments_json() == text, "text the model wrote is kept verbatim"
    broken = ToolCall(name="add", arguments='{"a": 1')
    assert (broken.arguments, broken.arguments_text) == (None, '{"a": 1')
    assert broken.id.startswith("call_")
    array = ToolCall(name="add", arguments="[1, 2]")
    assert array.arguments is None
    as_object = ToolCall(name="add", arguments={"a": 1})
    assert (as_object.arguments_text, as_object.arguments_json()) == (None, '{"a": 1}')
    assert ToolCall(name="f", arguments=None).arguments == {}
    assert ToolCall(name="f", arguments_text='{"x": 1}').arguments == {"x": 1}
    assert ToolCall.model_validate(call.model_dump()) == call
    with pytest.raises(ValueError, match="differs"):
        ToolCall(name="f", arguments='{"x": 1}', arguments_text='{"x": 2}')
    with pytest.raises(ValueError, match="extra"):
        ToolCall(name="f", argument={})  # type: ignore[call-arg]


async def test_the_toolbox_reports_invalid_text_arguments_of_a_tool_call() -> None:
    toolbox = create_toolbox([make_adder()])
    seen: list[Any] = []
    toolbox.on("call", lambda event: seen.append(event.call))
    [ok, broken] = from_openai_chat_tool_calls(
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
                {"id": "b", "type": "function", "function": {"name": "add", "arguments": '{"a": 1,'}},
            ],
        }
    )
    results = await toolbox.execute([ok, broken])
    assert [r.outcome for r in results] == ["success", "error"]
    assert results[1].error is not None
    assert results[1].error.code == "invalid_json"
    assert seen == [ok, broken]


async def test_a_history_keeps_a_tool_call_parsed_and_frozen_and_refuses_invalid_text() -> None:
    manager = SessionManager()
    session = await manager.create_session("u")
    [call] = from_openai_chat_tool_calls(
        {"tool_calls": [{"id": "c", "type": "function", "function": {"name": "add", "arguments": '{"a": [1]}'}}]}
    )
    message = await manager.add_message(session.id, "assistant", None, tool_calls=[call])
    [stored] = message.tool_calls
    assert stored == ToolCall(id="c", name="add", arguments={"a": [1]})
    assert stored.arguments is not None
    with pytest.raises(TypeError, match="read-only"):
        stored.arguments["a"].append(2)
    [broken] = from_openai_chat_tool_calls(
        {"tool_calls": [{"id": "d", "type": "function", "function": {"name": "add", "arguments": "{"}}]}
    )
    with pytest.raises(InvalidValueError, match="not valid JSON"):
        await manager.add_message(session.id, "assistant", None, tool_calls=[broken])
    with pytest.raises(ValueError, match="not a JSON object"):
        Message(seq=1, role="assistant", content=None, tool_calls=(broken,), created_at=message.created_at)
    await manager.close()


# -- layering -------------------------------------------------------------------------------------

SRC = Path(sessionware.__file__).resolve().parent
TOOLS_ORDER = (
    "errors",
    "results",
    "context",
    "arguments",
    "tool",
    "invocation",
    "policy",
    "middleware",
    "toolbox",
    "session",
    "otel",
    "providers",
)
"""The modules of sessionware.tools, each allowed to import only those before it."""


def sessionware_imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) for every sessionware import in ``path``, ``TYPE_CHECKING`` blocks counted as nested."""
    package = ".".join(("sessionware", *path.relative_to(SRC).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            name = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            if name.startswith("sessionware"):
                found.append((name, id(node) in top))
        elif isinstance(node, ast.Import):
            found.extend((a.name, id(node) in top) for a in node.names if a.name.startswith("sessionware"))
    return found


def test_tools_modules_import_only_the_modules_below_them() -> None:
    tools = SRC / "tools"
    assert {p.stem for p in tools.glob("*.py")} - {"__init__"} == set(TOOLS_ORDER)
    for index, stem in enumerate(TOOLS_ORDER):
        allowed = {f"sessionware.tools.{below}" for below in TOOLS_ORDER[:index]}
        for module, at_top in sessionware_imports(tools / f"{stem}.py"):
            if module.startswith("sessionware.tools"):
                assert module in allowed, (stem, module)
                assert at_top, f"tools.{stem} imports {module} inside a function or TYPE_CHECKING"


def test_the_provider_formats_import_no_surface() -> None:
    for path in (SRC / "providers").glob("*.py"):
        for module, at_top in sessionware_imports(path):
            core = module in ("sessionware.errors", "sessionware.frozen")
            assert core or module.startswith("sessionware.providers"), (path.name, module)
            assert at_top, (path.name, module)
    code = (
        "import sys, sessionware.providers, sessionware.agents.records\n"
        "print(' '.join(m for m in sys.modules if m.startswith(('sessionware.tools', 'sessionware.bot'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "", "the history's input parsing must not load the tools surface"
