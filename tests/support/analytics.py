"""Builders of the plain JSON records the analytics read (as kcat would send them), and a
wait for the analytics API to have read that far."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from devstack.harness.events import Who


def mode_changed(who: Who, to: str, cause: str, reason: str, when: str) -> dict[str, Any]:
    return {
        "type": "mode_changed",
        "schema_version": 1,
        "event_id": f"mc-{uuid.uuid4().hex}",
        **who.ids(),
        "from_mode": "ai" if to == "human" else "human",
        "to_mode": to,
        "cause": cause,
        "actor": "agent:support@1" if cause == "agent" else f"{cause}:x",
        "reason": reason,
        "changed_at": when,
        "expires_at": None,
        "state_version": 1,
        "command_id": None,
    }


class TicketLife:
    """One ticket's TicketChanged records, versions counted up."""

    def __init__(self, who: Who, queue: str) -> None:
        self.who, self.queue, self.id = who, queue, f"tk-{uuid.uuid4().hex}"
        self.version = 0
        self.status: str | None = None

    def change(self, status: str, when: str, assignee: str | None = None) -> dict[str, Any]:
        self.version += 1
        record = {
            "type": "ticket_changed",
            "schema_version": 1,
            "event_id": f"tc-{uuid.uuid4().hex}",
            **self.who.ids(),
            "ticket_id": self.id,
            "queue": self.queue,
            "from_status": self.status,
            "status": status,
            "assignee": assignee,
            "actor": f"operator:{assignee or 'system'}",
            "note": None,
            "changed_at": when,
            "ticket_version": self.version,
            "position": 1 if status == "queued" else None,
        }
        self.status = status
        return record


def human_reply(who: Who, when: str) -> dict[str, Any]:
    return {
        "type": "outbound_message",
        "schema_version": 1,
        "event_id": f"om-{uuid.uuid4().hex}",
        **who.ids(),
        "conversation_id": "c-1",
        "sender": "human",
        "text": "Hi, Jane here.",
        "attachments": [],
        "in_reply_to": None,
        "sent_at": when,
    }


async def settled(
    http: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    done: Any,
    timeout: float = 30,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The analytics once `done(body)` holds (the consumer has read that far), or the last
    answer at the deadline, for the assertions to show what differs."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await http.get(path, params=params, headers=headers)).json()
        if done(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)  # a poll interval: the condition above is what is awaited
