"""`python -m services.agent`: the reference AI agent and its ops HTTP endpoints."""

from __future__ import annotations

import asyncio

from services.agent.domain import Brain
from services.agent.llm import OpenAIBrain
from services.agent.rules import RuleBrain
from services.agent.settings import AgentSettings
from services.agent.store import FailureCounter
from services.agent.worker import AgentHandler
from services.common import tracing
from services.common.kafka import TransactionalProcessor
from services.common.logging import configure_logging
from services.common.service import run_service
from services.handoff.state.store import ModeStore


def make_brain(settings: AgentSettings) -> Brain:
    if settings.agent_brain == "openai":
        key = settings.agent_llm_api_key
        return OpenAIBrain(
            settings.agent_llm_base_url,
            settings.agent_llm_model,
            key.get_secret_value() if key else None,
            settings.agent_llm_timeout_seconds,
            fallback=RuleBrain(),
        )
    return RuleBrain()


async def main() -> None:
    settings = AgentSettings()
    configure_logging(settings.log_level, settings.log_redact)
    tracing.configure(settings, "agent")
    # Reads only: the published agent version and, for the LLM brain, the transcript.
    store = ModeStore.from_settings(settings)
    brain = make_brain(settings)
    failures = FailureCounter(store.redis, settings.agent_failed_turns_ttl_minutes * 60_000)
    handler = AgentHandler(
        store,
        failures,
        brain,
        settings.topics,
        max_failed_turns=settings.agent_max_failed_turns,
        history_turns=settings.agent_llm_history_turns,
        concurrency=settings.agent_concurrency,
    )
    processor = TransactionalProcessor(settings, "agent", [settings.topics.ai_requests], handler)
    try:
        await run_service("agent", settings, settings.agent_http_port, store, [processor])
    finally:
        await brain.aclose()


if __name__ == "__main__":
    asyncio.run(main())
