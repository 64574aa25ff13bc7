"""A worker process for the OpenAI Agents SDK tests: ``python -m tests.openai_agents_worker '<json config>'``.

It waits until the start time, then runs ``turns`` turns of the SDK's ``Runner`` on one conversation, each in
``session.turn()`` unless ``"hold"`` is false, with a scripted model that answers with how many items it was sent.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from agents import Agent, Runner, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

from sessionware import SessionManager
from sessionware.integrations.openai_agents import SessionwareSession

set_tracing_disabled(True)


class CountingModel(Model):
    """Answers ``saw <n>``, ``n`` being how many items came before the turn's own input."""

    def __init__(self, worker: int) -> None:
        self.worker = worker
        self.calls = 0

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        await asyncio.sleep(0.05)  # a model takes a while: another process's turn would slip in here
        self.calls += 1
        text = f"saw {len(input) - 1}"
        message = ResponseOutputMessage(
            id=f"msg_{self.worker}_{self.calls}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the workers run non-streamed turns")


async def main(config: dict[str, Any]) -> None:
    manager = SessionManager(config["url"])
    session = SessionwareSession(
        config["conversation"], manager, user_id=config["user"], isolation="distributed", lease=10, lock_wait=120
    )
    agent = Agent(name="counter", model=CountingModel(config["worker"]))
    try:
        delay = config["start_at"] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for turn in range(config["turns"]):
            prompt = f"w{config['worker']} t{turn}"
            if config.get("hold", True):
                await session.run(agent, prompt)
            else:
                await Runner.run(agent, prompt, session=session)
    finally:
        await manager.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
