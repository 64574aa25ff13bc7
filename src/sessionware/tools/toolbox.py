"""The toolbox: a registry of tools that runs calls through middleware, policy and timeouts."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, get_args, overload

from .context import ToolContext
from .errors import ToolDefinitionError
from .invocation import Invocation
from .middleware import CallNext, Middleware, as_middleware
from .policy import Decision, PolicyLike, as_policies
from .results import ErrorInfo, RequiredAction, ToolCall, ToolResult, error_from_exception, error_info, new_call_id
from .tool import Tool, check_timeout

logger = logging.getLogger("sessionware.tools")

EventType = Literal["call", "success", "error", "denied", "action_required", "complete"]
"""``call`` fires when a call starts; then one of ``success`` / ``error`` /
``denied`` / ``action_required``; then ``complete`` for every call."""

EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))

CallLike = ToolCall | Mapping[str, Any]
"""A :class:`ToolCall` or a ``{"name": ..., "arguments": {...} or "json", "id": ...}`` dict."""


@dataclass(frozen=True, slots=True)
class ToolEvent:
    """What a hook receives. ``duration`` (seconds) and ``result`` are ``None`` on ``call``."""

    type: EventType
    call: ToolCall
    context: ToolContext
    started_at: datetime
    duration: float | None = None
    result: ToolResult | None = None

    @property
    def tool_name(self) -> str:
        """The name of the tool called."""
        return self.call.name


Hook = Callable[[ToolEvent], Any]
"""``hook(event)``, sync or async. A hook that raises is logged and does not change the call."""


def _decision_result(invocation: Invocation, decision: Decision) -> ToolResult:
    reason = decision.reason or "denied by policy"
    if decision.kind == "deny":
        return invocation.deny(reason, code=decision.code or "denied", details=decision.details)
    kind: Literal["approval", "input"] = "approval" if decision.kind == "needs_approval" else "input"
    return invocation.require(RequiredAction(kind=kind, reason=reason, details=dict(decision.details)))


def _to_call(raw: object) -> ToolCall | ErrorInfo:
    if isinstance(raw, ToolCall):
        return raw
    if not isinstance(raw, Mapping):
        return error_info(
            "invalid_call", "validation", f"a tool call must be a mapping with a name, not {type(raw).__name__}"
        )
    name = raw.get("name")
    call_id = raw.get("id")
    arguments = raw.get("arguments")
    problems = []
    if not isinstance(name, str) or not name:
        problems.append({"path": "name", "message": "must be a non-empty string", "type": "string_type"})
    if call_id is not None and (not isinstance(call_id, str) or not call_id):
        problems.append({"path": "id", "message": "must be a non-empty string", "type": "string_type"})
    if arguments is not None and not isinstance(arguments, (str, Mapping)):
        problems.append(
            {"path": "arguments", "message": "must be an object or a JSON string", "type": "arguments_type"}
        )
    if problems:
        text = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        return error_info("invalid_call", "validation", f"invalid tool call: {text}", details={"issues": problems})
    return ToolCall(
        name=str(name),
        arguments={} if arguments is None else (arguments if isinstance(arguments, str) else dict(arguments)),
        id=str(call_id) if call_id else new_call_id(),
    )


class Toolbox:
    """Tools by name, and the one way to run them. Build one with :func:`create_toolbox`.

    Every call runs ``middleware (first listed outermost) → policy.before_execute
    → tool (under its timeout) → policy.after_execute``. The context a tool,
    policy and middleware see is the toolbox context, overlaid by the tool's
    bound context, overlaid by the per-call ``context=``. Nothing per call is
    kept on the toolbox, so one toolbox serves many users at once.

    Middleware of the configuration form change each tool once, when it is
    registered (and the registered tools when :meth:`use` adds one): the
    toolbox holds, lists, exports and runs the tools as configured.
    """

    def __init__(
        self,
        tools: Iterable[Tool[Any]] = (),
        *,
        context: Mapping[str, Any] | None = None,
        policy: PolicyLike | None = None,
        middleware: Iterable[Any] = (),
        timeout: float | None = None,
    ) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        self._sources: dict[str, Tool[Any]] = {}
        self._context = MappingProxyType(dict(ToolContext(context)))
        self._policies = as_policies(policy)
        self._middleware: list[Middleware] = [as_middleware(m) for m in middleware]
        self.timeout = check_timeout(timeout, "toolbox")
        self._hooks: dict[str, list[Hook]] = {event: [] for event in EVENT_TYPES}
        self._chain: CallNext = self._build_chain()
        for tool in tools:
            self.register(tool)

    def __repr__(self) -> str:
        return f"Toolbox({', '.join(self._tools)})"

    # registry

    @property
    def context(self) -> Mapping[str, Any]:
        """The toolbox context (read-only)."""
        return self._context

    @property
    def tools(self) -> tuple[Tool[Any], ...]:
        """The registered tools (as configured), in registration order."""
        return tuple(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool[Any]]:
        return iter(tuple(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool[Any] | None:
        """The tool called ``name`` (as configured), or ``None``."""
        return self._tools.get(name)

    def register(self, tool: Tool[Any], *, replace: bool = False) -> Tool[Any]:
        """Add ``tool`` and return it as registered: configured by the configuration-form middleware.

        That is ``tool`` itself when no middleware changes it. Registering the
        same tool again is a no-op; another tool of the same name needs
        ``replace=True``.
        """
        if not isinstance(tool, Tool):
            raise ToolDefinitionError(f"only a Tool can be registered, not {type(tool).__name__}")
        registered = self._tools.get(tool.name)
        if registered is not None and (tool is registered or tool is self._sources[tool.name]):
            return registered
        if registered is not None and not replace:
            raise ToolDefinitionError(f"a tool named {tool.name!r} is already registered; pass replace=True")
        configured = _configured(tool, self._middleware)
        self._sources[tool.name] = tool
        self._tools[tool.name] = configured
        return configured

    def unregister(self, name: str) -> Tool[Any]:
        """Remove and return the tool called ``name`` (as configured)."""
        try:
            tool = self._tools.pop(name)
        except KeyError:
            raise ToolDefinitionError(f"no tool named {name!r} is registered") from None
        del self._sources[name]
        return tool

    def select(self, *, tags: Iterable[str] | None = None, names: Iterable[str] | None = None) -> list[Tool[Any]]:
        """Tools having any of ``tags`` and/or one of ``names`` (all tools when both are ``None``)."""
        wanted_tags = None if tags is None else frozenset(tags)
        wanted_names = None if names is None else frozenset(names)
        return [
            tool
            for tool in self._tools.values()
            if (wanted_tags is None or tool.tags & wanted_tags) and (wanted_names is None or tool.name in wanted_names)
        ]

    def use(self, middleware: Any) -> None:
        """Append ``middleware``: the innermost call wrapper, and the last to configure each tool.

        A configuration-form middleware configures the tools registered so
        far at once (all or, if it fails on one, none).
        """
        added = as_middleware(middleware)
        if added.configures_tools:
            configured = {name: added.configure_tool(tool) for name, tool in self._tools.items()}
            self._tools.update(configured)
        self._middleware.append(added)
        self._chain = self._build_chain()

    # hooks

    def on(self, event: EventType, hook: Hook) -> Callable[[], None]:
        """Call ``hook(ToolEvent)`` on ``event``; returns a function that removes the hook."""
        if event not in EVENT_TYPES:
            raise ToolDefinitionError(f"unknown tool event {event!r}; use one of {sorted(EVENT_TYPES)}")
        if not callable(hook):
            raise ToolDefinitionError("a hook must be callable")
        hooks = self._hooks[event]
        hooks.append(hook)

        def remove() -> None:
            if hook in hooks:
                hooks.remove(hook)

        return remove

    async def _emit(self, event: ToolEvent) -> None:
        for hook in tuple(self._hooks[event.type]):
            try:
                value = hook(event)
                if inspect.isawaitable(value):
                    await value
            except Exception:
                logger.exception("tool hook %r failed on %s of call %s", hook, event.type, event.call.id)

    async def _finish(self, result: ToolResult, call: ToolCall, context: ToolContext, start: float) -> ToolResult:
        result = result.replace(duration=time.perf_counter() - start)
        if self._hooks[result.outcome] or self._hooks["complete"]:
            for kind in (result.outcome, "complete"):
                await self._emit(ToolEvent(kind, call, context, result.started_at, result.duration, result))
        return result

    # running

    @overload
    async def execute(
        self,
        call: CallLike,
        context: Mapping[str, Any] | None = None,
        *,
        parallel: bool = True,
        concurrency: int = 8,
        stop_on_error: bool = False,
    ) -> ToolResult: ...

    @overload
    async def execute(
        self,
        call: Sequence[CallLike],
        context: Mapping[str, Any] | None = None,
        *,
        parallel: bool = True,
        concurrency: int = 8,
        stop_on_error: bool = False,
    ) -> list[ToolResult]: ...

    async def execute(
        self,
        call: CallLike | Sequence[CallLike],
        context: Mapping[str, Any] | None = None,
        *,
        parallel: bool = True,
        concurrency: int = 8,
        stop_on_error: bool = False,
    ) -> ToolResult | list[ToolResult]:
        """Run one call and return its :class:`ToolResult`, or a list of calls and return their results.

        ``context`` is the trusted per-call context (who is calling: user id,
        session id, ...), merged over the toolbox context. It never comes from
        the model. Never raises for a bad call: every failure is a result.

        A list runs as a batch: ``parallel`` with at most ``concurrency`` calls
        at once, or one after another. With ``stop_on_error``, once a call does
        not succeed no further call starts; calls already running finish, and
        each call not run gets an ``error`` result of category ``cancelled``.
        Results are in the order of the calls.
        """
        if context is not None and not isinstance(context, Mapping):
            raise ToolDefinitionError(f"the call context must be a mapping, not {type(context).__name__}")
        if isinstance(call, (ToolCall, Mapping)):
            return await self._execute_one(call, context)
        if isinstance(call, (str, bytes)) or not isinstance(call, Sequence):
            raise ToolDefinitionError(f"execute takes a call (a mapping) or a list of calls, not {type(call).__name__}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ToolDefinitionError(f"concurrency must be a positive int, not {concurrency!r}")
        return await self._execute_batch(list(call), context, parallel, concurrency, stop_on_error)

    async def _execute_batch(
        self,
        calls: list[CallLike],
        context: Mapping[str, Any] | None,
        parallel: bool,
        concurrency: int,
        stop_on_error: bool,
    ) -> list[ToolResult]:
        results: list[ToolResult | None] = [None] * len(calls)
        stopped_by: list[ToolResult] = []

        async def run(index: int, call: CallLike) -> None:
            if stopped_by:
                return
            result = await self._execute_one(call, context)
            results[index] = result
            if stop_on_error and not result.ok and not stopped_by:
                stopped_by.append(result)

        if parallel:
            limit = asyncio.Semaphore(concurrency)

            async def limited(index: int, call: CallLike) -> None:
                async with limit:
                    await run(index, call)

            async with asyncio.TaskGroup() as group:
                for index, call in enumerate(calls):
                    group.create_task(limited(index, call))
        else:
            for index, call in enumerate(calls):
                await run(index, call)
        return [
            result if result is not None else self._skipped(call, stopped_by[0])
            for call, result in zip(calls, results, strict=True)
        ]

    def _skipped(self, raw: CallLike, cause: ToolResult) -> ToolResult:
        parsed = _to_call(raw)
        call_id = parsed.id if isinstance(parsed, ToolCall) else new_call_id()
        name = parsed.name if isinstance(parsed, ToolCall) else ""
        return ToolResult(
            id=call_id,
            name=name,
            outcome="error",
            error=error_info(
                "skipped",
                "cancelled",
                f"not run: call {cause.id} ({cause.name}) of the same batch ended with {cause.outcome}",
                retryable=True,
                details={"stopped_by": cause.id},
            ),
            started_at=datetime.now(UTC),
        )

    async def _execute_one(self, raw: CallLike, context: Mapping[str, Any] | None) -> ToolResult:
        start = time.perf_counter()
        started_at = datetime.now(UTC)
        parsed = _to_call(raw)
        if isinstance(parsed, ToolCall):
            tool = self._tools.get(parsed.name)
            if tool is not None:
                return await self._run(tool, parsed, context, start, started_at)
            error = error_info(
                "not_found",
                "not_found",
                f"no tool named {parsed.name!r}",
                details={"available": sorted(self._tools)},
            )
            call = parsed
        else:
            error = parsed
            name = raw.get("name") if isinstance(raw, Mapping) else None
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            call = ToolCall(
                name=name if isinstance(name, str) else "",
                id=raw_id if isinstance(raw_id, str) and raw_id else new_call_id(),
            )
        call_context = ToolContext(self._context, context)
        await self._emit(ToolEvent("call", call, call_context, started_at))
        result = ToolResult(id=call.id, name=call.name, outcome="error", error=error, started_at=started_at)
        return await self._finish(result, call, call_context, start)

    async def run_tool(
        self, tool: Tool[Any], call: ToolCall, *, context: Mapping[str, Any] | None = None
    ) -> ToolResult:
        """Run ``call`` on ``tool`` through this toolbox's pipeline, with ``tool``'s bound context.

        A tool registered here, or derived from one (an earlier configuration,
        a :meth:`~Tool.with_context` copy), runs as currently registered. Any
        other tool is configured by the configuration-form middleware for
        this run only.
        """
        if context is not None and not isinstance(context, Mapping):
            raise ToolDefinitionError(f"the call context must be a mapping, not {type(context).__name__}")
        start, started_at = time.perf_counter(), datetime.now(UTC)
        registered = self._tools.get(tool.name)
        if registered is None or not registered.same_tool(tool):
            registered = _configured(tool, self._middleware)
        return await self._run(registered, call, context, start, started_at, bound=tool.context)

    async def _run(
        self,
        tool: Tool[Any],
        call: ToolCall,
        context: Mapping[str, Any] | None,
        start: float,
        started_at: datetime,
        *,
        bound: Mapping[str, Any] | None = None,
    ) -> ToolResult:
        call_context = ToolContext(self._context, tool.context if bound is None else bound, context)
        raw, arguments, error = tool.parse_call(call)
        invocation = Invocation(call, tool, call_context, arguments, raw, started_at, start, error)
        await self._emit(ToolEvent("call", call, call_context, started_at))
        result = await self._chain(invocation)
        return await self._finish(result, call, call_context, start)

    def _build_chain(self) -> CallNext:
        handler: CallNext = self._core
        for middleware in reversed(self._middleware):
            if middleware.wraps_calls:
                handler = _layer(middleware, handler)
        return handler

    async def _core(self, invocation: Invocation) -> ToolResult:
        if invocation.arguments is None:
            error = invocation.error or error_info("invalid_arguments", "validation", "invalid arguments")
            result = invocation.fail(error)
        else:
            result = await self._decide_and_run(invocation)
        for policy in self._policies:
            try:
                result = await policy.after(invocation, result)
            except Exception as exc:
                result = invocation.fail(error_from_exception(exc, "after_execute"), exc)
        return result

    async def _decide_and_run(self, invocation: Invocation) -> ToolResult:
        for policy in self._policies:
            try:
                decision = await policy.check(invocation)
            except Exception as exc:
                return invocation.fail(error_from_exception(exc, "before_execute"), exc)
            if not decision.allowed:
                return _decision_result(invocation, decision)
        return await self._invoke(invocation)

    async def _invoke(self, invocation: Invocation) -> ToolResult:
        tool = invocation.tool
        arguments = invocation.arguments
        if arguments is None:
            return invocation.fail(invocation.error or error_info("invalid_arguments", "validation", "invalid"))
        limit = tool.timeout if tool.timeout is not None else self.timeout
        try:
            value = await tool.run(arguments, invocation.context, time_limit=limit)
        except Exception as exc:
            return invocation.fail(error_from_exception(exc, "tool"), exc)
        return invocation.success(value)


def _configured(tool: Tool[Any], middleware: Iterable[Middleware]) -> Tool[Any]:
    """``tool`` as the configuration-form middleware make it, applied in order."""
    for item in middleware:
        tool = item.configure_tool(tool)
    return tool


def _layer(middleware: Middleware, call_next: CallNext) -> CallNext:
    async def layer(invocation: Invocation) -> ToolResult:
        try:
            result = await middleware(invocation, call_next)
        except Exception as exc:
            return invocation.fail(error_from_exception(exc, f"middleware {middleware.name!r}"), exc)
        if not isinstance(result, ToolResult):
            message = f"middleware {middleware.name!r} returned {type(result).__name__}, not a ToolResult"
            return invocation.fail(error_info("invalid_middleware_result", "internal", message))
        return result

    return layer


def create_toolbox(
    tools: Iterable[Tool[Any]] = (),
    *,
    context: Mapping[str, Any] | None = None,
    policy: PolicyLike | None = None,
    middleware: Iterable[Any] = (),
    timeout: float | None = None,
) -> Toolbox:
    """Create a :class:`Toolbox` holding ``tools``.

    ``context``: values every call sees. ``policy``: a :class:`Policy` (or an
    object / dict with ``before_execute`` / ``after_execute``, or a list of
    them). ``middleware``: wrappers around every call, the first listed
    outermost, and changes to every tool (the configuration form, applied
    in order when a tool is registered); see :func:`create_middleware`.
    ``timeout``: seconds a tool may run unless it sets its own.
    """
    return Toolbox(tools, context=context, policy=policy, middleware=middleware, timeout=timeout)


__all__ = [
    "EVENT_TYPES",
    "CallLike",
    "EventType",
    "Hook",
    "ToolEvent",
    "Toolbox",
    "create_toolbox",
    "error_from_exception",
]
