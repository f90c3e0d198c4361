"""`python -m services.agent`: the reference AI agent and its ops HTTP endpoints."""

from __future__ import annotations

import asyncio

from services.agent.domain import Brain
from services.agent.llm import OpenAIBrain
from services.agent.rules import RuleBrain
from services.agent.settings import AgentSettings
from services.agent.store import AgentStore
from services.agent.versions import AfterCatchUp, VersionFollower
from services.agent.worker import AgentHandler
from services.common import tracing
from services.common.kafka import TransactionalProcessor
from services.common.logging import configure_logging
from services.common.redis_options import connect_with
from services.common.service import Worker, run_service


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
    # The agent's own keys only (`agent:`): what it learnt of its versions from the log, its
    # count of failed turns and its recent turns. It reads nothing of the handoff service.
    store = AgentStore(
        connect_with(settings),
        ttl_ms=settings.agent_failed_turns_ttl_minutes * 60_000,
        turns_cap=settings.agent_turns_kept,
    )
    brain = make_brain(settings)
    handler = AgentHandler(
        store,
        brain,
        settings.topics,
        max_failed_turns=settings.agent_max_failed_turns,
        history_turns=settings.agent_llm_history_turns,
        concurrency=settings.agent_concurrency,
    )
    versions = VersionFollower(settings, store)
    processor = TransactionalProcessor(settings, "agent", [settings.topics.ai_requests], handler)
    workers: list[Worker] = [versions, AfterCatchUp(processor, versions)]
    try:
        await run_service("agent", settings, settings.agent_http_port, store, workers)
    finally:
        await brain.aclose()


if __name__ == "__main__":
    asyncio.run(main())
