"""A worker process for the Google ADK tests: ``python -m tests.adk_worker '<json config>'``.

Waits until the start time, then runs ``turns`` turns of an ADK ``Runner`` on
one session, each held by ``SessionwareSessionService.turn``. The agent's
scripted model calls the ``count`` tool, then answers with how many contents
it was sent, so a turn run on a stale or interleaved session shows.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncGenerator
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.tools.tool_context import ToolContext
from google.genai import types

from sessionware import SessionManager
from sessionware.integrations.adk import SessionwareSessionService


class ScriptedModel(BaseLlm):
    """Calls ``count`` for a user message, then answers ``"saw N, n=..."`` once the tool has answered."""

    model: str = "scripted"
    delay: float = 0.0

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        if self.delay:
            await asyncio.sleep(self.delay)  # a model takes a while: another process's turn would slip in here
        last = llm_request.contents[-1]
        answered = [part.function_response for part in last.parts or [] if part.function_response]
        if answered:
            response = answered[0].response or {}
            text = f"saw {len(llm_request.contents)}, n={response.get('n')}"
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))
            return
        call = types.FunctionCall(name="count", args={"by": 1})
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(function_call=call)]))


def count(by: int, tool_context: ToolContext) -> dict[str, Any]:
    """Add ``by`` to the session's, the user's and the app's counters."""
    state = tool_context.state
    state["n"] = state.get("n", 0) + by
    state["user:total"] = state.get("user:total", 0) + by
    state["app:total"] = state.get("app:total", 0) + by
    state["temp:scratch"] = "never stored"
    return {"n": state["n"]}


def counting_agent(delay: float = 0.0) -> LlmAgent:
    return LlmAgent(name="counter", model=ScriptedModel(delay=delay), instruction="Count.", tools=[count])


def user_message(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


async def main(config: dict[str, Any]) -> None:
    manager = SessionManager(config["url"], isolation="distributed", lease=10, lock_wait=120)
    service = SessionwareSessionService(manager, isolation="distributed", lease=10, lock_wait=120)
    runner = Runner(app_name=config["app"], agent=counting_agent(delay=0.02), session_service=service)
    ids = {"app_name": config["app"], "user_id": config["user"], "session_id": config["session"]}
    try:
        delay = config["start_at"] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for turn in range(config["turns"]):
            async with service.turn(**ids):
                message = user_message(f"w{config['worker']} t{turn}")
                async for _ in runner.run_async(
                    user_id=config["user"], session_id=config["session"], new_message=message
                ):
                    pass
    finally:
        await runner.close()
        await manager.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
