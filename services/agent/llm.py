"""A brain on any OpenAI-compatible chat-completions endpoint, offering `request_handoff`.

`POST {base_url}/chat/completions` with the published version's handoff instructions in the
system prompt, the interaction's recent turns, and the `request_handoff(reason)` function
as a tool (only where a handoff can be accepted). A tool call becomes a `Handoff`, text an
`Answer`. When the endpoint fails (network, HTTP error, a malformed answer) the fallback
brain (the offline rules) decides, so a user is never left without an answer or a handoff.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import structlog

from services.agent.domain import Answer, Brain, Handoff, Resumed, Thought, Turn

log = structlog.get_logger()

TOOL_NAME = "request_handoff"
TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": (
            "Hand this conversation to a human teammate: the AI stops answering this user "
            "and a person takes over. Use it when the user asks for a person, when the case "
            "is urgent (billing disputes, fraud) or sensitive (safety), when the instructions "
            "say so, or when you cannot help after trying."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "Why, in one sentence (at most 280 characters), for the desk.",
                }
            },
            "required": ["reason"],
        },
    },
}
ROLES = {"user": "user", "ai": "assistant", "human": "assistant", "system": "assistant"}


def system_prompt(turn: Turn) -> str:
    lines = [
        "You are the customer support assistant of this company, chatting with an end user.",
        "Answer briefly and helpfully, in the user's language.",
    ]
    if turn.can_hand_off:
        lines.append(
            f"You have a tool, {TOOL_NAME}(reason). Call it, without any other answer, when "
            "the conversation should go to a human teammate."
        )
        if turn.instructions.strip():
            lines += ["The operator's handoff instructions:", turn.instructions.strip()]
    else:
        lines.append(
            "You cannot hand this conversation to a person. If the user asks for one, say so "
            "politely and keep helping."
        )
    if turn.resumed is not None:
        lines += resumed_lines(turn.resumed)
    return "\n".join(lines)


def resumed_lines(resumed: Resumed) -> list[str]:
    """R20: what the prompt says of the human stretch that just ended."""
    ended = {
        "operator": "A teammate handed the conversation back to you.",
        "timeout": "The conversation came back to you because nobody wrote for a while "
        "(or no teammate picked it up).",
    }.get(resumed.ended_by, "The conversation came back to you.")
    lines = [
        "The user has just come back to you from a human teammate"
        + (f" ({resumed.teammate})." if resumed.teammate else "."),
        f"They were handed off because: {resumed.reason}",
        ended,
    ]
    if resumed.resolution_note:
        lines.append(f"The teammate's resolution note: {resumed.resolution_note}")
    if resumed.turns:
        lines.append("What was said while the teammate had the conversation:")
        lines += [f"- {role}: {text}" for role, text in resumed.turns]
    lines.append(
        "Acknowledge the return briefly (do not greet the user as if new), build on what "
        "the teammate did, and do not repeat it."
    )
    return lines


def chat_request(turn: Turn, model: str) -> dict[str, Any]:
    """The chat-completions request body for one turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(turn)}]
    for role, text in turn.history:
        prefix = {"human": "[human teammate] ", "system": "[notice] "}.get(role, "")
        messages.append({"role": ROLES.get(role, "user"), "content": prefix + text})
    content = turn.text
    if turn.attachments:
        content += "\n[attached: " + ", ".join(turn.attachments) + "]"
    messages.append({"role": "user", "content": content})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if turn.can_hand_off:
        body["tools"] = [TOOL]
        body["tool_choice"] = "auto"
    return body


def parse_completion(data: dict[str, Any]) -> Thought:
    """A tool call of request_handoff is a Handoff; text is an Answer. Raises ValueError on a
    response that is neither."""
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"no choices[0].message in the completion: {exc}") from exc
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        if function.get("name") == TOOL_NAME:
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except json.JSONDecodeError:
                arguments = {}
            reason = arguments.get("reason") if isinstance(arguments, dict) else None
            return Handoff(str(reason or "The assistant asked for a human teammate."))
    text = message.get("content")
    if isinstance(text, str) and text.strip():
        return Answer(text.strip())
    raise ValueError("the completion has neither text nor a request_handoff call")


class OpenAIBrain:
    name = "openai"
    wants_history = True

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float,
        fallback: Brain,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self._model = model
        self._fallback = fallback

    async def think(self, turn: Turn) -> Thought:
        try:
            response = await self._client.post(
                "chat/completions", json=chat_request(turn, self._model)
            )
            response.raise_for_status()
            return parse_completion(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("llm_failed_rules_decide", error=f"{type(exc).__name__}: {exc}"[:300])
            return await self._fallback.think(turn)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._fallback.aclose()
