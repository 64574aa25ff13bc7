"""One OpenTelemetry span per tool call, checked with the SDK's in-memory exporter."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from sessionware.tools import Decision, ToolContext, create_tool, create_toolbox
from sessionware.tools.otel import tracing_middleware


class Amount(BaseModel):
    amount: int


async def test_a_span_per_call_with_outcome_error_and_nesting() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    async def pay(args: Amount, context: ToolContext) -> int:
        with tracer.start_as_current_span("charge card"):
            if args.amount == 13:
                raise RuntimeError("card declined")
        return args.amount

    toolbox = create_toolbox(
        middleware=[tracing_middleware(tracer)],
        policy=lambda inv: Decision.deny("no refunds") if inv.params["amount"] < 0 else None,
    )
    create_tool(name="pay", description="Pay.", schema=Amount, execute=pay, toolbox=toolbox)
    await toolbox.execute(
        [
            {"name": "pay", "arguments": {"amount": 5}, "id": "ok"},
            {"name": "pay", "arguments": {"amount": 13}, "id": "boom"},
            {"name": "pay", "arguments": {"amount": -1}, "id": "no"},
        ],
        parallel=False,
    )
    spans = exporter.get_finished_spans()
    tool_spans = {str((s.attributes or {})["gen_ai.tool.call.id"]): s for s in spans if s.name == "execute_tool pay"}
    assert set(tool_spans) == {"ok", "boom", "no"}
    ok, boom, no = tool_spans["ok"], tool_spans["boom"], tool_spans["no"]
    ok_attributes, boom_attributes, no_attributes = (dict(s.attributes or {}) for s in (ok, boom, no))
    assert ok_attributes["gen_ai.operation.name"] == "execute_tool"
    assert ok_attributes["gen_ai.tool.name"] == "pay"
    assert ok_attributes["sessionware.tool.outcome"] == "success"
    assert ok.status.status_code is StatusCode.UNSET
    assert boom_attributes["sessionware.tool.outcome"] == "error"
    assert boom_attributes["error.type"] == "tool_failed"
    assert boom.status.status_code is StatusCode.ERROR
    assert [e.name for e in boom.events] == ["exception"]
    assert dict(boom.events[0].attributes or {})["exception.message"] == "card declined"
    assert no_attributes["sessionware.tool.outcome"] == "denied"
    assert no_attributes["error.type"] == "denied"
    assert no.status.status_code is StatusCode.UNSET
    charges = [s for s in spans if s.name == "charge card"]
    assert len(charges) == 2
    parents = {s.parent.span_id for s in charges if s.parent is not None}
    assert parents == {ok.context.span_id, boom.context.span_id}
