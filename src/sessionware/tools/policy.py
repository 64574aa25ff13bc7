"""Policies: decide before a call runs, observe (or replace) its result after."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from .errors import ToolDefinitionError, ToolError
from .invocation import Invocation
from .results import ToolResult

DecisionKind = Literal["allow", "deny", "needs_approval", "needs_input"]

BeforeExecute = Callable[[Invocation], Any]
"""``before_execute(invocation)``, sync or async, returns a :class:`Decision`, a
``{"allow": bool, "reason": str}`` dict, a bool, or ``None`` (allow)."""

AfterExecute = Callable[[Invocation, ToolResult], Any]
"""``after_execute(invocation, result)``, sync or async, returns ``None`` or a replacement ``ToolResult``."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``before_execute`` decided: allow, deny (with a reason), or ask a person first."""

    kind: DecisionKind
    reason: str | None = None
    code: str | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    ALLOW: ClassVar[Decision]

    @property
    def allowed(self) -> bool:
        """True if the call may run."""
        return self.kind == "allow"

    @classmethod
    def allow(cls) -> Decision:
        """Let the call run."""
        return cls.ALLOW

    @classmethod
    def deny(cls, reason: str, *, code: str = "denied", details: Mapping[str, Any] | None = None) -> Decision:
        """Refuse the call; ``reason`` is reported in the ``denied`` result."""
        return cls("deny", reason, code, MappingProxyType(dict(details or {})))

    @classmethod
    def needs_approval(cls, reason: str, *, details: Mapping[str, Any] | None = None) -> Decision:
        """Hold the call until a person approves it (outcome ``action_required``)."""
        return cls("needs_approval", reason, "needs_approval", MappingProxyType(dict(details or {})))

    @classmethod
    def needs_input(cls, reason: str, *, details: Mapping[str, Any] | None = None) -> Decision:
        """Hold the call until a person supplies more input (outcome ``action_required``)."""
        return cls("needs_input", reason, "needs_input", MappingProxyType(dict(details or {})))


Decision.ALLOW = Decision("allow")


def to_decision(value: object) -> Decision:
    """Read what ``before_execute`` returned; raise :class:`ToolError` if it is not a decision."""
    if value is None or value is True:
        return Decision.ALLOW
    if value is False:
        return Decision.deny("denied by policy")
    if isinstance(value, Decision):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("allow"), bool):
        if value["allow"]:
            return Decision.ALLOW
        reason = value.get("reason")
        return Decision.deny(reason if isinstance(reason, str) and reason else "denied by policy")
    raise ToolError(
        f"before_execute returned {type(value).__name__}; return a Decision, "
        "an {'allow': bool, 'reason': str} dict, a bool or None",
        code="invalid_decision",
        category="internal",
    )


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Policy:
    """A ``before_execute`` check and an ``after_execute`` observer, either optional.

    ``before_execute(invocation)`` sees the tool, its validated arguments, its
    metadata and the call context (``invocation.context``) and decides. It runs
    inside the middleware, right before the tool, so it must not have side
    effects that assume the call will run. ``after_execute(invocation, result)``
    sees every outcome that reached the policy (validation errors, denials,
    failures and successes) and may return a replacement result.
    """

    __slots__ = ("after_execute", "before_execute")

    def __init__(
        self,
        before_execute: BeforeExecute | None = None,
        after_execute: AfterExecute | None = None,
    ) -> None:
        for name, fn in (("before_execute", before_execute), ("after_execute", after_execute)):
            if fn is not None and not callable(fn):
                raise ToolDefinitionError(f"Policy {name} must be callable, not {type(fn).__name__}")
        self.before_execute = before_execute
        self.after_execute = after_execute

    def __repr__(self) -> str:
        return f"Policy(before_execute={self.before_execute!r}, after_execute={self.after_execute!r})"

    async def check(self, invocation: Invocation) -> Decision:
        """Run ``before_execute`` and read its decision."""
        if self.before_execute is None:
            return Decision.ALLOW
        return to_decision(await _maybe_await(self.before_execute(invocation)))

    async def after(self, invocation: Invocation, result: ToolResult) -> ToolResult:
        """Run ``after_execute``; return its replacement result, or ``result``."""
        if self.after_execute is None:
            return result
        replacement = await _maybe_await(self.after_execute(invocation, result))
        if replacement is None:
            return result
        if not isinstance(replacement, ToolResult):
            raise ToolError(
                f"after_execute returned {type(replacement).__name__}; return None or a ToolResult",
                code="invalid_after_execute",
                category="internal",
            )
        return replacement


PolicyLike = Policy | Mapping[str, Any] | Callable[[Invocation], Any] | Sequence[Any] | object


def as_policies(policy: PolicyLike | None) -> tuple[Policy, ...]:
    """Normalise what ``create_toolbox(policy=...)`` accepts into a tuple of policies.

    A :class:`Policy`; an object with ``before_execute`` / ``after_execute``
    methods; a dict with those keys; a plain callable (a ``before_execute``);
    or a list of these, checked in order (the first refusal wins).
    """
    if policy is None:
        return ()
    if isinstance(policy, Policy):
        return (policy,)
    if isinstance(policy, Mapping):
        unknown = set(policy) - {"before_execute", "after_execute"}
        if unknown:
            raise ToolDefinitionError(f"unknown policy keys {sorted(unknown)}; use before_execute / after_execute")
        return (Policy(policy.get("before_execute"), policy.get("after_execute")),)
    before = getattr(policy, "before_execute", None)
    after = getattr(policy, "after_execute", None)
    if before is not None or after is not None:
        return (Policy(before, after),)
    if isinstance(policy, (list, tuple)):
        return tuple(p for item in policy for p in as_policies(item))
    if callable(policy):
        return (Policy(before_execute=policy),)
    raise ToolDefinitionError(f"cannot use {type(policy).__name__} as a policy")


__all__ = ["AfterExecute", "BeforeExecute", "Decision", "DecisionKind", "Policy", "as_policies", "to_decision"]
