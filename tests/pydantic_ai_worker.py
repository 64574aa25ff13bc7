"""A worker process for the Pydantic AI tests: ``python -m tests.pydantic_ai_worker '<json config>'``.

Mode ``"load"`` prints a conversation's messages as Pydantic AI's JSON; mode
``"turns"`` waits until the start time, then runs ``turns`` turns of a Pydantic
AI agent on one conversation (a scripted model that answers with how many
messages it was sent).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from sessionware import SessionManager
from sessionware.integrations.pydantic_ai import PydanticAIHistory


async def counting_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    await asyncio.sleep(0.02)  # a model takes a while: another process's turn would slip in here
    return ModelResponse(parts=[TextPart(f"saw {len(messages) - 1}")])


async def main(config: dict[str, Any]) -> None:
    manager = SessionManager(config["url"])
    history = PydanticAIHistory(
        manager, user_id=config["user"], isolation=config.get("isolation", "local"), lease=10, lock_wait=120
    )
    try:
        if config["mode"] == "load":
            messages = await history.load(config["conversation"])
            sys.stdout.write(ModelMessagesTypeAdapter.dump_json(messages).decode())
            return
        agent = Agent(FunctionModel(counting_model))
        delay = config["start_at"] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        for turn in range(config["turns"]):
            await history.run(agent, f"w{config['worker']} t{turn}", conversation_id=config["conversation"])
    finally:
        await manager.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
