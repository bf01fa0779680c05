"""A chat model that plays a script of real tool calls: to try the agent doors without a model
or a network (the quickstarts), and to test them with the agent frameworks running for real.

It is LangChain's own ``GenericFakeChatModel`` with a script instead of canned text. A turn is
an ``AIMessage`` (say, one that calls a tool: :func:`call`) or a function of the conversation so
far that makes one, so a turn can use what a tool answered, as a model would (:func:`with_plan`
calls a tool on the plan the last answer named)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field

Turn = AIMessage | Callable[[Sequence[BaseMessage]], AIMessage]
"""One turn of the model: a message, or a function of the conversation that makes one."""

PLAN_ID = re.compile(r"[Pp]lan (pl_[0-9a-f]{16}(?:\.e\d+)?)")
"""How an answer names a plan (an edited plan's id ends ``.e1``, ``.e2``...)."""

_ids = itertools.count(1)


class ScriptedChatModel(GenericFakeChatModel):
    """Answers each turn with the next of ``script``; ``bind_tools`` keeps the model as it
    is (the script knows the tools). When the script is over it says so."""

    messages: Iterator[AIMessage | str] = Field(default_factory=lambda: iter(()))
    script: list[Any] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = self.script.pop(0) if self.script else AIMessage(content="(script over)")
        message = turn(messages) if callable(turn) else turn
        return ChatResult(generations=[ChatGeneration(message=message)])


def call(name: str, **args: Any) -> AIMessage:
    """A turn that calls one tool."""
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}],
    )


def plan_named(messages: Sequence[BaseMessage]) -> str:
    """The last plan id a tool answer named."""
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            found = PLAN_ID.findall(str(message.text))
            if found:
                return str(found[-1])
    raise LookupError("no tool answer named a plan")


def with_plan(name: str, **args: Any) -> Callable[[Sequence[BaseMessage]], AIMessage]:
    """A turn that calls ``name`` on the plan the last tool answer named (as ``plan_id``)."""

    def turn(messages: Sequence[BaseMessage]) -> AIMessage:
        return call(name, plan_id=plan_named(messages), **args)

    return turn
