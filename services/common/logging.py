"""structlog JSON logging, with message text and end-user ids redacted by default."""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import Any

import structlog

REDACTED_FIELDS = frozenset({"text", "reason", "attachments", "external_id", "detail_raw"})


def pseudonymise_key(key: str) -> str:
    """Keeps tenant, agent and channel readable; the end user's id becomes a stable hash."""
    parts = key.split(":", 3)
    if len(parts) < 4 or not parts[3]:
        return key
    digest = hashlib.sha256(parts[3].encode()).hexdigest()[:12]
    return ":".join([*parts[:3], f"~{digest}"])


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for name in REDACTED_FIELDS.intersection(event):
        event[name] = "[redacted]"
    if isinstance(event.get("interaction"), str):
        event["interaction"] = pseudonymise_key(event["interaction"])
    return event


def configure_logging(level: str = "INFO", redact: bool = True) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if redact:
        processors.append(_redact)
    processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # aiokafka logs through the standard library; keep its warnings, as JSON-free lines on stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
