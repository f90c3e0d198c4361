"""The OpenAI-compatible brain (services/agent/llm.py) against a fake endpoint (httpx
MockTransport): never the network."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.agent.domain import Answer, Handoff, Resumed, Turn
from services.agent.llm import TOOL_NAME, OpenAIBrain, chat_request, parse_completion
from services.agent.rules import RuleBrain

Handler = Callable[[httpx.Request], httpx.Response]


def completion(content: str | None = None, tool_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_reason is not None:
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": TOOL_NAME, "arguments": json.dumps({"reason": tool_reason})},
            }
        ]
    return {"id": "chatcmpl-1", "choices": [{"index": 0, "message": message}]}


class FakeEndpoint:
    """Records the requests; answers with `reply` (a JSON body or an httpx.Response)."""

    def __init__(self, reply: dict[str, Any] | httpx.Response) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.reply, httpx.Response):
            return self.reply
        return httpx.Response(200, json=self.reply)

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].content)  # type: ignore[no-any-return]


def brain(endpoint: Handler, key: str | None = "sk-test") -> OpenAIBrain:
    return OpenAIBrain(
        "https://llm.example/v1/",
        "tiny-model",
        key,
        5.0,
        fallback=RuleBrain(),
        transport=httpx.MockTransport(endpoint),
    )


TURN = Turn(
    "my lawyer will call",
    attachments=("contract.pdf",),
    instructions="Hand off when: the user mentions a lawyer.",
    can_hand_off=True,
    history=(("user", "hi"), ("ai", "Hello!"), ("human", "Jane here"), ("system", "Handed.")),
)


async def test_a_tool_call_is_a_handoff_and_the_request_offers_the_tool() -> None:
    endpoint = FakeEndpoint(completion(tool_reason="The user mentioned a lawyer."))
    b = brain(endpoint)
    thought = await b.think(TURN)
    await b.aclose()

    assert thought == Handoff("The user mentioned a lawyer.")
    request = endpoint.requests[0]
    assert str(request.url) == "https://llm.example/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = endpoint.body
    assert body["model"] == "tiny-model"
    assert [t["function"]["name"] for t in body["tools"]] == [TOOL_NAME]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["reason"]
    system = body["messages"][0]
    assert system["role"] == "system" and "the user mentions a lawyer" in system["content"]
    assert [m["role"] for m in body["messages"][1:]] == [
        "user", "assistant", "assistant", "assistant", "user",
    ]  # fmt: skip
    assert body["messages"][3]["content"] == "[human teammate] Jane here"
    assert body["messages"][-1]["content"] == "my lawyer will call\n[attached: contract.pdf]"


async def test_text_is_an_answer() -> None:
    endpoint = FakeEndpoint(completion(content="  We're open 9 to 6.  "))
    b = brain(endpoint, key=None)
    assert await b.think(Turn("hours?")) == Answer("We're open 9 to 6.")
    assert "authorization" not in endpoint.requests[0].headers
    await b.aclose()


async def test_no_tool_is_offered_where_handoff_cannot_happen() -> None:
    body = chat_request(Turn("a person please", can_hand_off=False), "m")
    assert "tools" not in body and "tool_choice" not in body
    assert "cannot hand this conversation to a person" in body["messages"][0]["content"]


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(401, json={"error": {"message": "bad key"}}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json=completion(content="")),
    ],
)
async def test_a_failing_endpoint_falls_back_to_the_rules(reply: httpx.Response) -> None:
    b = brain(FakeEndpoint(reply))
    assert await b.think(Turn("I want to talk to a person", can_hand_off=True)) == Handoff(
        "The user asked to talk to a person."
    )
    await b.aclose()


async def test_an_unreachable_endpoint_falls_back_to_the_rules() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    b = brain(refuse)
    thought = await b.think(Turn("hello"))
    assert isinstance(thought, Answer) and thought.text.startswith("Hello")
    await b.aclose()


def test_parse_completion_tolerates_bad_tool_arguments() -> None:
    data = completion(tool_reason="x")
    data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = "{not json"
    assert parse_completion(data) == Handoff("The assistant asked for a human teammate.")


def test_parse_completion_ignores_other_tools() -> None:
    data = completion(content="Here you go.", tool_reason="x")
    data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] = "lookup_order"
    assert parse_completion(data) == Answer("Here you go.")


def test_back_from_a_teammate_the_prompt_carries_the_context() -> None:  # R20
    resumed = Resumed(
        reason="The user reported a double charge.",
        teammate="Jane",
        resolution_note="Refund issued.",
        ended_by="operator",
        turns=(("user", "charged twice!"), ("human", "Refunded it.")),
    )
    body = chat_request(Turn("thanks", resumed=resumed), "m")
    system = body["messages"][0]["content"]
    for expected in (
        "come back to you from a human teammate (Jane)",
        "handed off because: The user reported a double charge.",
        "A teammate handed the conversation back to you.",
        "resolution note: Refund issued.",
        "- human: Refunded it.",
        "do not greet the user as if new",
    ):
        assert expected in system, expected
    assert "human teammate" not in chat_request(Turn("thanks"), "m")["messages"][0]["content"]
