"""Fixtures of the operator API tests: the running handoff service, tokens, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.api.helpers import Api, make_token

TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
def token(jwt_secret: str, tenant: str) -> TokenFactory:
    """token(role=..., tenant=..., sub=..., ttl=..., **claims) for this test's tenant."""

    def make(role: str = "editor", **kwargs: object) -> str:
        kwargs.setdefault("tenant", tenant)
        return make_token(jwt_secret, role=role, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def editor(http: httpx.AsyncClient, token: TokenFactory) -> Api:
    return Api(http, token("editor"))


@pytest.fixture
def viewer(http: httpx.AsyncClient, token: TokenFactory) -> Api:
    return Api(http, token("viewer", sub="vic"))


@pytest.fixture
def admin(http: httpx.AsyncClient, token: TokenFactory) -> Api:
    return Api(http, token("admin", sub="ada"))
