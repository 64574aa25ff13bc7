"""Middleware: wrappers around every call a toolbox runs, and changes to every tool it registers.

**Call form**, ``async def mw(invocation, call_next) -> ToolResult``. Order:
with ``create_toolbox(middleware=[a, b, c])`` a call goes
``a → b → c → policy.before_execute → tool → policy.after_execute`` and the
result comes back ``c → b → a``: the first middleware listed is the outermost,
runs first and sees the final result last. Middleware run for every call to a
known tool, including calls whose arguments failed validation
(``invocation.arguments is None``) so they can record them; an unknown tool
name never reaches middleware. A middleware may change the invocation
(``invocation.with_context(...)``) before passing it on, return a result of
its own without calling ``call_next`` (e.g. ``invocation.deny(reason)``), or
raise :class:`~sessionware.tools.ToolError` /
:class:`~sessionware.tools.ToolDenied`. ``call_next`` never raises: every
failure further in arrives as a ``ToolResult``.

**Configuration form**, the seed's ``createMiddleware((toolConfiguration) =>
({...toolConfiguration, execute}))``: ``def mw(config: ToolConfig) ->
ToolConfig``. It changes a tool's definition (description, metadata, tags,
timeout, or ``execute`` wrapped), once per tool and never per call: when the
tool is registered, and for the tools already registered when
``toolbox.use()`` adds it. Several run in the order listed, each on the one
before's result. Return ``config.replace(...)`` or a mapping such as
``{**config, "execute": execute}``. A wrapped ``execute`` runs where the
tool's function runs: inside the call-form middleware and the policy, under
the tool's timeout. The function must be synchronous and must not rename the
tool; anything wrong is a :class:`~sessionware.tools.ToolDefinitionError`
raised where the tool is registered.

:func:`create_middleware` tells the forms apart by the function's signature:
one positional parameter is the configuration form, two the call form. A
signature that fits both (``*args``, defaults) or neither is refused unless
``form=`` says which.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, cast

from .errors import ToolDefinitionError
from .invocation import Invocation
from .results import ToolResult
from .tool import Tool, ToolConfig

CallNext = Callable[[Invocation], Awaitable[ToolResult]]
MiddlewareFn = Callable[[Invocation, CallNext], Awaitable[ToolResult]]
ConfigureFn = Callable[[ToolConfig], ToolConfig | Mapping[str, Any]]
MiddlewareForm = Literal["call", "config"]
"""``call``: ``async (invocation, call_next) -> ToolResult``; ``config``: ``(ToolConfig) -> ToolConfig``."""


def _name_of(fn: object) -> str:
    return str(getattr(fn, "__name__", type(fn).__name__))


class Middleware:
    """A named piece of toolbox middleware; build one with :func:`create_middleware`.

    ``fn`` wraps every call (the call form); ``configure_fn`` changes every
    tool once, when it is registered (the configuration form). A middleware
    has one or both.
    """

    __slots__ = ("configure_fn", "fn", "name")

    def __init__(
        self, fn: MiddlewareFn | None = None, *, configure: ConfigureFn | None = None, name: str | None = None
    ) -> None:
        if fn is None and configure is None:
            raise ToolDefinitionError("middleware needs a call function, a configure function or both")
        if fn is not None and not callable(fn):
            raise ToolDefinitionError(f"middleware must be callable, not {type(fn).__name__}")
        if configure is not None and not callable(configure):
            raise ToolDefinitionError(f"a middleware's configure must be callable, not {type(configure).__name__}")
        self.fn = fn
        self.configure_fn = configure
        self.name = name or _name_of(fn if fn is not None else configure)

    def __repr__(self) -> str:
        return f"Middleware({self.name!r})"

    @property
    def wraps_calls(self) -> bool:
        """True if this middleware wraps every call (the call form)."""
        return self.fn is not None

    @property
    def configures_tools(self) -> bool:
        """True if this middleware changes each tool when it is registered (the configuration form)."""
        return self.configure_fn is not None

    def __call__(self, invocation: Invocation, call_next: CallNext) -> Awaitable[ToolResult]:
        if self.fn is None:
            return call_next(invocation)
        return self.fn(invocation, call_next)

    def configure(self, config: ToolConfig) -> ToolConfig:
        """Run the configuration form on ``config`` and check what it returned (``config`` itself without one)."""
        if self.configure_fn is None:
            return config
        where = f"middleware {self.name!r} on tool {config.name!r}"
        try:
            value = self.configure_fn(config)
        except ToolDefinitionError as exc:
            raise ToolDefinitionError(f"{where}: {exc}") from exc
        except Exception as exc:
            raise ToolDefinitionError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise ToolDefinitionError(f"{where} returned an awaitable; the configuration form must be synchronous")
        if isinstance(value, ToolConfig):
            new = value
        elif isinstance(value, Mapping):
            if not all(isinstance(key, str) for key in value):
                raise ToolDefinitionError(f"{where} returned a mapping with keys that are not str")
            try:
                new = config.replace(**value)
            except ToolDefinitionError as exc:
                raise ToolDefinitionError(f"{where} returned a bad configuration: {exc}") from exc
        else:
            raise ToolDefinitionError(
                f"{where} returned {type(value).__name__}; return a ToolConfig (config.replace(...)) "
                "or a mapping such as {**config, 'execute': execute}"
            )
        if new.name != config.name:
            raise ToolDefinitionError(f"{where} renamed the tool to {new.name!r}; middleware cannot rename a tool")
        return new

    def configure_tool(self, tool: Tool[Any]) -> Tool[Any]:
        """``tool`` as this middleware configures it (``tool`` itself if it has no configuration form)."""
        if self.configure_fn is None:
            return tool
        config = tool.config
        new = self.configure(config)
        if new == config:
            return tool
        try:
            return tool.with_config(new)
        except ToolDefinitionError as exc:
            raise ToolDefinitionError(f"middleware {self.name!r} left tool {tool.name!r} unusable: {exc}") from exc


def middleware_form(fn: Callable[..., Any]) -> MiddlewareForm:
    """Which form ``fn`` is, read from its signature; :class:`ToolDefinitionError` if it fits both or neither."""
    name = _name_of(fn)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"cannot read the signature of middleware {name!r} ({exc}); pass form='call' or form='config'"
        ) from exc
    required = 0
    capacity = 0.0
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            capacity = math.inf
        elif param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            capacity += 1
            required += param.default is inspect.Parameter.empty
        elif param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty:
            raise ToolDefinitionError(f"middleware {name!r}{signature} has a required keyword-only {param.name!r}")
    fits_call = required <= 2 <= capacity
    fits_config = required <= 1 <= capacity
    if fits_call and fits_config:
        raise ToolDefinitionError(
            f"middleware {name!r}{signature} could take a tool configuration (one argument) or "
            "(invocation, call_next); pass form='config' or form='call'"
        )
    if fits_call:
        return "call"
    if fits_config:
        return "config"
    raise ToolDefinitionError(
        f"middleware {name!r}{signature} must take (invocation, call_next) or a tool configuration (config)"
    )


def create_middleware(
    fn: MiddlewareFn | ConfigureFn | Middleware, *, name: str | None = None, form: MiddlewareForm | None = None
) -> Middleware:
    """Toolbox middleware from ``async fn(invocation, call_next) -> ToolResult`` or ``fn(config) -> ToolConfig``.

    The form is read from ``fn``'s signature (one positional parameter: the
    configuration form; two: the call form), or given as ``form=``. See
    :mod:`sessionware.tools.middleware` for what each form may do.
    """
    if isinstance(fn, Middleware):
        if form is not None:
            raise ToolDefinitionError(f"{fn!r} is a Middleware already; form= is for functions")
        if name is None:
            return fn
        return Middleware(fn if fn.wraps_calls else None, configure=fn.configure_fn, name=name)
    if not callable(fn):
        raise ToolDefinitionError(f"cannot use {type(fn).__name__} as tool middleware")
    chosen = middleware_form(fn) if form is None else form
    if chosen == "call":
        return Middleware(cast(MiddlewareFn, fn), name=name)
    if chosen == "config":
        if inspect.iscoroutinefunction(fn):
            raise ToolDefinitionError(
                f"middleware {_name_of(fn)!r} is async; the configuration form runs when a tool is registered "
                "and must be a plain function"
            )
        return Middleware(configure=cast(ConfigureFn, fn), name=name)
    raise ToolDefinitionError(f"form must be 'call' or 'config', not {form!r}")


def as_middleware(item: Any) -> Middleware:
    """A :class:`Middleware` from a middleware or a plain function of either form."""
    if isinstance(item, Middleware):
        return item
    if callable(item):
        return create_middleware(item)
    raise ToolDefinitionError(f"cannot use {type(item).__name__} as tool middleware")


__all__ = [
    "CallNext",
    "ConfigureFn",
    "Middleware",
    "MiddlewareFn",
    "MiddlewareForm",
    "as_middleware",
    "create_middleware",
    "middleware_form",
]
