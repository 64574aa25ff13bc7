"""An OpenTelemetry span per tool call (needs the ``otel`` extra: ``opentelemetry-api``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError
from .invocation import Invocation
from .middleware import CallNext, Middleware
from .results import ToolResult

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


def tracing_middleware(tracer: Tracer | None = None) -> Middleware:
    """Middleware that wraps every call in a span named ``execute_tool {name}``.

    Attributes follow the OpenTelemetry GenAI conventions
    (``gen_ai.operation.name``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id``)
    plus ``sessionware.tool.outcome``; a non-success outcome sets ``error.type``
    to the error code, and an ``error`` outcome marks the span as failed and
    records the exception behind it. List it first in ``middleware=`` so the
    span covers the other middleware too. ``tracer`` defaults to the global
    tracer provider's ``sessionware.tools`` tracer.
    """
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise MissingExtraError("tracing", "otel", "opentelemetry") from exc
    active: Tracer = tracer if tracer is not None else trace.get_tracer("sessionware.tools")

    async def tracing(invocation: Invocation, call_next: CallNext) -> ToolResult:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": invocation.tool_name,
            "gen_ai.tool.call.id": invocation.id,
        }
        with active.start_as_current_span(
            f"execute_tool {invocation.tool_name}",
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            result = await call_next(invocation)
            span.set_attribute("sessionware.tool.outcome", result.outcome)
            if result.error is not None:
                span.set_attribute("error.type", result.error.code)
            if result.outcome == "error":
                message = result.error.message if result.error is not None else "error"
                span.set_status(trace.Status(trace.StatusCode.ERROR, message))
                if result.exception is not None:
                    span.record_exception(result.exception)
            return result

    return Middleware(tracing, name="tracing")


__all__ = ["tracing_middleware"]
