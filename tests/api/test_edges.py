"""The operator API's edges (issue 16): body limits before reading, the token before the
body, Idempotency-Key reuse, absurd token claims, strict request types (a string or a
boolean is never a number; 5.0 is, as JSON Schema's `integer` says)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from devstack.harness.events import Who
from services.handoff.state.store import ModeStore
from tests.api.conftest import TokenFactory
from tests.api.helpers import Api, agent_path, error_code, mode_path, publish_agent

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


async def test_a_body_over_the_limit_is_refused_413_from_its_content_length(
    http: httpx.AsyncClient, token: TokenFactory, tenant: str
) -> None:
    who = Who(tenant, "support")
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    big = b'{"mode": "human", "reason": "' + b"x" * (2 * MIB) + b'"}'

    r = await http.put(mode_path(who), content=big, headers=headers)

    assert r.status_code == 413 and error_code(r) == "body_too_large"


async def test_a_streamed_body_over_the_limit_is_cut_off_413(
    http: httpx.AsyncClient, token: TokenFactory, tenant: str
) -> None:
    who = Who(tenant, "support")
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        nonlocal sent
        for _ in range(64):
            sent += 64 * 1024
            yield b" " * (64 * 1024)

    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    r = await http.put(mode_path(who), content=chunks(), headers=headers)

    assert r.status_code == 413 and error_code(r) == "body_too_large"


async def test_the_token_is_checked_before_the_body_is_parsed(
    http: httpx.AsyncClient, tenant: str
) -> None:
    who = Who(tenant, "support")
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = await http.put(
            mode_path(who),
            content=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 401, r.text
        assert error_code(r) in ("missing_token", "invalid_token")
    r = await http.post(agent_path(tenant, "support") + "/versions", content=b"[" * 10_000)
    assert r.status_code == 401 and error_code(r) == "missing_token"


async def test_an_idempotency_key_reused_with_another_body_is_refused_422(
    editor: Api, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    headers = {"Idempotency-Key": "req-7"}

    first = await editor.put(mode_path(who), {"mode": "human", "reason": "a"}, headers)
    other = await editor.put(mode_path(who), {"mode": "human", "reason": "b"}, headers)
    again = await editor.put(mode_path(who), {"mode": "human", "reason": "a"}, headers)

    assert first.status_code == 200, first.text
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"
    assert other.headers["Idempotency-Key"] == "req-7"
    assert again.status_code == 200 and again.json() == first.json()
    assert [c["reason"] for c in await store.history(who.key)] == ["a"]


async def test_one_idempotency_key_on_two_users_is_two_commands(
    editor: Api, store: ModeStore, tenant: str
) -> None:
    alice, bob = Who(tenant, "support"), Who(tenant, "support", user="bob")
    await publish_agent(store, alice)
    headers = {"Idempotency-Key": "same-key"}
    body = {"mode": "human", "reason": "Wants a person."}

    a = await editor.put(mode_path(alice), body, headers)
    b = await editor.put(mode_path(bob), body, headers)

    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json()["command_id"] != b.json()["command_id"]
    assert (await store.read_state(bob.key)).mode == "human"


@pytest.mark.parametrize("exp", [1e20, 10**30, -1e20, "soon", float("nan")])
async def test_an_absurd_exp_is_401_not_500(
    http: httpx.AsyncClient, jwt_secret: str, tenant: str, exp: object
) -> None:
    claims = {"sub": "jane", "tenant": tenant, "role": "admin", "iat": int(time.time())}
    raw = jwt.encode({**claims, "exp": 0}, jwt_secret, algorithm="HS256")
    # pyjwt refuses to *encode* some of these; sign the claims by hand with the same secret.
    header, _, _ = raw.split(".")
    token = _sign(header, {**claims, "exp": exp}, jwt_secret)

    r = await http.get("/v1/session", headers={"Authorization": f"Bearer {token}"})

    assert r.status_code == 401, r.text
    assert error_code(r) in ("invalid_token", "token_expired")


def _sign(header: str, claims: dict[str, object], secret: str) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    payload = b64(json.dumps(claims).encode())  # json writes NaN as NaN, as a forger would
    signing = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "human", "reason": "Asked.", "idle_timeout_minutes": "5"},
        {"mode": "human", "reason": "Asked.", "idle_timeout_minutes": 5.5},
        {"mode": "human", "reason": "Asked.", "idle_timeout_minutes": True},
    ],
)
async def test_mode_switch_bodies_are_strictly_typed(
    editor: Api, store: ModeStore, tenant: str, body: dict[str, object]
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)

    r = await editor.put(mode_path(who), body)

    assert r.status_code == 422 and error_code(r) == "validation_failed", r.text
    assert (await store.read_state(who.key)).version == 0


@pytest.mark.parametrize(
    "handoff",
    [
        {"enabled": "true"},
        {"enabled": 1},
        {"enabled": True, "idle_timeout_minutes": "30"},
    ],
)
async def test_agent_version_bodies_are_strictly_typed(
    editor: Api, tenant: str, handoff: dict[str, object]
) -> None:
    r = await editor.post(agent_path(tenant, "support") + "/versions", {"handoff": handoff})

    assert r.status_code == 422 and error_code(r) == "validation_failed", r.text


async def test_desk_reply_attachment_sizes_are_strictly_typed(editor: Api, tenant: str) -> None:
    who = Who(tenant, "support")
    attachment = {
        "id": "a1",
        "name": "a.png",
        "content_type": "image/png",
        "size": "12",
        "url": "https://files.example/a.png",
    }
    r = await editor.post(
        mode_path(who).removesuffix("/mode") + "/messages",
        {"text": "Hi", "attachments": [attachment]},
    )

    assert r.status_code == 422 and error_code(r) == "validation_failed", r.text
