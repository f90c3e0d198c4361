from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from services.common.settings import CommonSettings


class AgentSettings(CommonSettings):
    """Settings of the reference agent (env `HANDOFF_...`)."""

    agent_http_port: int = 8083
    # "rules": the offline rule brain (no network, no key); "openai": any OpenAI-compatible
    # chat-completions endpoint, with the rule brain as its fallback when the call fails.
    agent_brain: Literal["rules", "openai"] = "rules"
    agent_llm_base_url: str = "https://api.openai.com/v1"
    agent_llm_model: str = "gpt-4o-mini"
    agent_llm_api_key: SecretStr | None = None
    agent_llm_timeout_seconds: float = 20.0
    # Recorded turns of the interaction the LLM sees before the new message.
    agent_llm_history_turns: int = 10
    # Turns of an interaction the agent keeps for the LLM brain (its own, under `agent:`),
    # for as long as its count of failed turns (agent_failed_turns_ttl_minutes).
    agent_turns_kept: int = 50
    # Hand off after this many turns in a row the agent could not answer.
    agent_max_failed_turns: int = 3
    # How long the count of failed turns is kept after the interaction's last message.
    agent_failed_turns_ttl_minutes: int = 60
    # Interactions whose messages are thought about at the same time within one batch
    # (one interaction's messages always one after the other, in order).
    agent_concurrency: int = 8
