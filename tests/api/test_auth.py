"""Who may call what: 401 for no or bad tokens, 403 for viewers' writes, 404 across tenants
with the very body a missing resource of one's own tenant gets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.api.auth import JwtVerifier
from services.handoff.api.errors import ApiError
from services.handoff.domain import limits
from services.handoff.state.store import ModeStore
from tests.api.conftest import TokenFactory
from tests.api.helpers import Api, error_code, publish_agent, route, user_path

pytestmark = pytest.mark.integration

# (method, path under /v1/tenants/{t}, body): every operator endpoint.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/users/web/alice", None),
    ("PUT", "/users/web/alice/agents/support/mode", {"mode": "human", "reason": "Asked."}),
    ("GET", "/users/web/alice/agents/support/history", None),
    ("GET", "/users/web/alice/agents/support/transcript", None),
    ("POST", "/users/web/alice/agents/support/messages", {"text": "Hi, Jane here."}),
    ("POST", "/agents/support/versions", {"handoff": {"enabled": True}}),
    ("POST", "/agents/support/versions/1/publish", None),
    ("GET", "/agents/support", None),
    ("GET", "/desk/tickets", None),
    ("GET", "/desk/stream", None),
    ("GET", "/queues", None),
    ("GET", "/queues/billing", None),
    ("PUT", "/queues/billing", {"pickup_minutes": 5}),
    ("GET", "/queues/billing/tickets", None),
    ("GET", f"/tickets/tk1-{'0' * 32}", None),
    ("POST", f"/tickets/tk1-{'0' * 32}/claim", None),
    ("POST", f"/tickets/tk1-{'0' * 32}/assign", {"assignee": "bob"}),
    ("POST", f"/tickets/tk1-{'0' * 32}/transfer", {"queue": "billing"}),
    ("POST", f"/tickets/tk1-{'0' * 32}/release", None),
    ("POST", f"/tickets/tk1-{'0' * 32}/resolve", {"note": "Done."}),
]
WRITES = [e for e in ENDPOINTS if e[0] in ("PUT", "POST")]


async def call(
    http: httpx.AsyncClient, method: str, path: str, body: Any, token: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await http.request(method, path, json=body, headers=headers)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(token: TokenFactory, tenant: str) -> dict[str, tuple[str, str]]:
    """name -> (token, expected code)."""
    now = int(time.time())
    claims = {"sub": "jane", "tenant": tenant, "role": "admin", "exp": now + 600}
    return {
        "bad signature": (jwt.encode(claims, "x" * 48, algorithm="HS256"), "invalid_token"),
        "expired": (token("editor", ttl=-120), "token_expired"),
        "alg none": (f"{_b64({'alg': 'none'})}.{_b64(claims)}.", "invalid_token"),
        "garbage": ("not-a-jwt", "invalid_token"),
        "no exp": (token("editor", exp=None), "invalid_token"),
        "unknown role": (token("owner"), "invalid_token"),
        "bad tenant claim": (token("editor", tenant="a b"), "invalid_token"),
    }


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_every_endpoint_answers_401_without_a_valid_token(
    http: httpx.AsyncClient, token: TokenFactory, tenant: str, method: str, path: str, body: Any
) -> None:
    url = f"/v1/tenants/{tenant}{path}"
    missing = await call(http, method, url, body, None)
    assert missing.status_code == 401 and error_code(missing) == "missing_token"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for name, (bad, code) in bad_tokens(token, tenant).items():
        r = await call(http, method, url, body, bad)
        assert r.status_code == 401, (name, r.text)
        assert error_code(r) == code, name


async def test_a_bearer_scheme_other_than_bearer_is_401(
    http: httpx.AsyncClient, token: TokenFactory, tenant: str
) -> None:
    r = await http.get(
        f"/v1/tenants/{tenant}/agents/support", headers={"Authorization": f"Basic {token()}"}
    )
    assert r.status_code == 401 and error_code(r) == "missing_token"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_viewers_cannot_change_anything(
    viewer: Api, tenant: str, method: str, path: str, body: Any
) -> None:
    r = await call(viewer.http, method, f"/v1/tenants/{tenant}{path}", body, viewer.token)
    assert r.status_code == 403, r.text
    assert error_code(r) == "insufficient_role"


async def test_another_tenants_resources_are_404_like_missing_ones(
    http: httpx.AsyncClient,
    bus: Bus,
    store: ModeStore,
    token: TokenFactory,
    tenant: str,
    jwt_secret: str,
) -> None:
    """Tenant `tenant` has the user, agent and version; `other` has none of them. A token of
    `other` gets on `tenant`'s paths exactly what it gets on its own (missing) ones."""
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await route(bus, who)
    mine = Api(http, token("admin"))
    assert (await mine.switch(who, "human")).status_code == 200
    other = f"{tenant}x"
    outsider = token("admin", tenant=other)

    creating = ("/mode", "/versions")  # in one's own tenant these create what they act on
    for method, path, body in ENDPOINTS:
        if path == "/desk/stream" or path.endswith(creating):
            continue  # the stream's 404 is checked below, without reading a body forever
        theirs = await call(http, method, f"/v1/tenants/{tenant}{path}", body, outsider)
        if path.startswith(("/desk", "/queues")):  # a tenant's collections: 404 as unknown
            own = await call(http, method, f"/v1/tenants/{tenant}/nothing/here", body, outsider)
        else:
            own = await call(http, method, f"/v1/tenants/{other}{path}", body, outsider)
        assert theirs.status_code == own.status_code == 404, (path, theirs.text, own.text)
        assert theirs.json() == own.json(), path
    for method, path, body in ENDPOINTS:
        if path.endswith(creating):
            theirs = await call(http, method, f"/v1/tenants/{tenant}{path}", body, outsider)
            assert theirs.status_code == 404, (path, theirs.text)
            assert error_code(theirs) in {"user_not_found", "agent_not_found"}
    versions, _ = await store.agent_versions(tenant, "support")
    assert len(versions) == 1  # the outsider's Apply did not land

    # Viewers of another tenant get the 404 too, not a 403 that would confirm the path.
    as_viewer = token("viewer", tenant=other)
    r = await call(http, "PUT", f"{user_path(who)}/agents/support/mode", ENDPOINTS[1][2], as_viewer)
    assert r.status_code == 404 and error_code(r) == "user_not_found"
    async with http.stream(
        "GET", f"/v1/tenants/{tenant}/desk/stream", headers={"Authorization": f"Bearer {outsider}"}
    ) as stream:
        assert stream.status_code == 404


def test_rs256_tokens_are_accepted_with_the_configured_public_key_only() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    claims = {"sub": "jane", "tenant": "acme", "role": "viewer", "exp": int(time.time()) + 60}
    rs_token = jwt.encode(claims, private, algorithm="RS256")
    secret = "s" * 48

    operator = JwtVerifier(secret, public_pem).verify(rs_token)
    assert (operator.sub, operator.tenant, operator.role) == ("jane", "acme", "viewer")
    with pytest.raises(ApiError) as no_key:
        JwtVerifier(secret).verify(rs_token)
    assert no_key.value.code == "invalid_token"
    # The classic confusion: an HS256 token "signed" with the public key as the HMAC secret.
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(ApiError) as confused:
        JwtVerifier(secret, public_pem).verify(forged)
    assert confused.value.status == 401


async def test_session_tells_the_console_who_the_token_is(
    viewer: Api, http: httpx.AsyncClient, tenant: str
) -> None:
    r = await viewer.get("/v1/session")
    assert r.status_code == 200
    body = r.json()
    assert (body["sub"], body["tenant"], body["role"], body["can_write"]) == (
        "vic",
        tenant,
        "viewer",
        False,
    )
    assert (await http.get("/v1/session")).status_code == 401


async def test_the_console_is_served_locally_with_a_strict_csp(http: httpx.AsyncClient) -> None:
    root = await http.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    page = await http.get("/console/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, nothing remote
    for asset in ("/console/js/app.js", "/console/js/desk.js", "/console/app.css"):
        r = await http.get(asset)
        assert r.status_code == 200, asset


async def test_limits_are_the_domain_table_for_any_signed_in_operator(
    viewer: Api, http: httpx.AsyncClient
) -> None:
    r = await viewer.get("/v1/limits")
    assert r.status_code == 200
    assert r.json() == limits.table()
    assert (await http.get("/v1/limits")).status_code == 401
