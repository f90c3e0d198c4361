"""What the API and browser tests share: tokens, a small client, and setting up a user."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.domain.modes import HandoffConfig
from services.handoff.state.store import ModeStore

NOTICE = "A teammate from support has this conversation now."


def make_token(
    secret: str,
    tenant: str,
    role: str = "editor",
    sub: str = "jane",
    ttl: float = 600,
    **claims: Any,
) -> str:
    now = int(time.time())
    body = {"sub": sub, "tenant": tenant, "role": role, "iat": now, "exp": now + ttl}
    body["jti"] = uuid.uuid4().hex
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def user_path(who: Who) -> str:
    return f"/v1/tenants/{who.tenant}/users/{who.channel}/{quote(who.user or '', safe='')}"


def mode_path(who: Who) -> str:
    return f"{user_path(who)}/agents/{who.agent}/mode"


def agent_path(tenant: str, agent: str) -> str:
    return f"/v1/tenants/{tenant}/agents/{agent}"


class Api:
    """An httpx client for one token."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self.http = http
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params or None, headers=self._headers(None))

    async def put(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.http.put(path, json=body, headers=self._headers(headers))

    async def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self._headers(headers))

    async def switch(self, who: Who, mode: str, reason: str = "Operator decision.", **extra: Any):  # type: ignore[no-untyped-def]
        return await self.put(mode_path(who), {"mode": mode, "reason": reason, **extra})


async def publish_agent(
    store: ModeStore, who: Who, enabled: bool = True, idle: int | None = None, publish: bool = True
) -> int:
    config = HandoffConfig(enabled=enabled, idle_timeout_minutes=idle, notice_text=NOTICE)
    n = await store.apply_agent_version(who.tenant, who.agent, config, "2026-01-01T00:00:00Z", "t")
    if publish:
        await store.publish_agent_version(who.tenant, who.agent, n)
    return n


async def route(bus: Bus, who: Who, text: str = "hello", **extra: Any) -> tuple[str, Any]:
    """Sends one user message as a channel would; (topic, RoutedMessage) once routed."""
    message = who.message(text, **extra)
    await bus.send(bus.topics.inbound, message, key=who.key)
    return await bus.wait_routed(message["event_id"])


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["detail"], str) and body["error"]["detail"], body
    return str(body["error"]["code"])
