"""What the agent-door tests share: the scripted chat model (:mod:`airlock.agents.scripted`:
LangChain's own fake chat model emitting real tool calls, so the agent frameworks run for real;
only the model's choices are fixed, since no model can run on these machines), and whether
Airlock's sandbox can run here."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from airlock.agents.scripted import ScriptedChatModel, Turn, call, plan_named, with_plan
from airlock.errors import AirlockError
from airlock.sandbox import get_sandbox


def sandbox_problem() -> str | None:
    """Why Airlock's default sandbox cannot run here, or None."""
    try:
        get_sandbox("bwrap")
    except AirlockError as exc:
        return exc.message
    return None


__all__ = ["ScriptedChatModel", "Turn", "call", "needs_sandbox", "plan_named", "with_plan"]

SANDBOX_PROBLEM = sandbox_problem()
needs_sandbox = pytest.mark.skipif(
    SANDBOX_PROBLEM is not None, reason=f"needs Airlock's sandbox: {SANDBOX_PROBLEM}"
)


def tool_answers(result: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]
