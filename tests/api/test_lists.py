"""The tenant's lists: agents and users with search (issue 14: a typo in an agent id must not
pass for a new agent), over HTTP against the running handoff service, on real Redis (and on
the Redis Cluster with HANDOFF_TEST_REDIS_CLUSTER=1: the lists read every shard)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.state.keys import (
    LISTS_BACKFILLED_KEY,
    InteractionKeys,
    agent_tag,
    agents_index_key,
    interactions_index_key,
)
from services.handoff.state.store import ModeStore
from tests.api.helpers import Api, error_code, make_token, publish_agent, route

pytestmark = pytest.mark.integration


async def test_agents_list_has_each_agent_with_its_versions_and_filters_by_q(
    editor: Api, viewer: Api, store: ModeStore, tenant: str
) -> None:
    support, sales = Who(tenant, "support"), Who(tenant, "sales-eu")
    await publish_agent(store, support)
    draft = await editor.post(
        f"/v1/tenants/{tenant}/agents/{support.agent}/versions",
        {"handoff": {"enabled": True, "notice_text": "A person will help."}},
    )
    assert draft.status_code == 201, draft.text
    await publish_agent(store, sales, publish=False)
    await publish_agent(store, Who(f"{tenant}-other", "support"))  # another tenant's

    r = await viewer.get(f"/v1/tenants/{tenant}/agents")

    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [a["agent_id"] for a in items] == ["sales-eu", "support"]
    by_id = {a["agent_id"]: a for a in items}
    assert (by_id["support"]["published_version"], by_id["support"]["latest_version"]) == (1, 2)
    assert (by_id["sales-eu"]["published_version"], by_id["sales-eu"]["latest_version"]) == (
        None,
        1,
    )
    # Its last change is the version Apply just made.
    assert datetime.fromisoformat(by_id["support"]["updated_at"]) >= datetime.fromisoformat(
        draft.json()["created_at"]
    )

    found = await viewer.get(f"/v1/tenants/{tenant}/agents", q="SUPP")
    assert [a["agent_id"] for a in found.json()["items"]] == ["support"]
    none = await viewer.get(f"/v1/tenants/{tenant}/agents", q="suport")
    assert none.status_code == 200 and none.json()["items"] == []


async def test_a_publish_moves_the_agents_updated_at(
    editor: Api, store: ModeStore, tenant: str
) -> None:
    support = Who(tenant, "support")
    await publish_agent(store, support, publish=False)
    before = (await editor.get(f"/v1/tenants/{tenant}/agents")).json()["items"][0]
    published = await editor.post(f"/v1/tenants/{tenant}/agents/support/versions/1/publish")
    assert published.status_code == 200, published.text
    after = (await editor.get(f"/v1/tenants/{tenant}/agents")).json()["items"][0]
    assert after["published_version"] == 1 and before["published_version"] is None
    assert datetime.fromisoformat(after["updated_at"]) >= datetime.fromisoformat(
        before["updated_at"]
    )


async def test_users_list_has_each_interaction_with_its_mode_and_last_activity(
    editor: Api, viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    support = Who(tenant, "support")
    await publish_agent(store, support, idle=30)
    for user in ("alice", "bob", "alicia"):
        await route(bus, Who(tenant, "support", user=user))
    await route(bus, Who(tenant, "sales", user="carol"))
    await route(bus, Who(f"{tenant}-other", "support", user="alina"))  # another tenant's
    switched = await editor.switch(Who(tenant, "support", user="alice"), "human", "Asked.")
    assert switched.status_code == 200, switched.text

    r = await viewer.get(f"/v1/tenants/{tenant}/users")

    assert r.status_code == 200, r.text
    body = r.json()
    rows = [(u["agent_id"], u["channel"], u["external_id"]) for u in body["items"]]
    assert rows == [
        ("sales", "web", "carol"),
        ("support", "web", "alice"),
        ("support", "web", "alicia"),
        ("support", "web", "bob"),
    ]
    assert body["next_cursor"] is None
    alice = body["items"][1]
    assert (alice["mode"], alice["cause"]) == ("human", "operator")
    assert datetime.fromisoformat(alice["expires_at"]) > datetime.fromisoformat(
        alice["last_activity_at"]
    )
    bob = body["items"][3]
    assert (bob["mode"], bob["cause"], bob["expires_at"]) == ("ai", None, None)
    assert bob["last_activity_at"] is not None

    of_agent = await viewer.get(f"/v1/tenants/{tenant}/users", agent="support", q="ALI")
    assert [u["external_id"] for u in of_agent.json()["items"]] == ["alice", "alicia"]
    substring = await viewer.get(f"/v1/tenants/{tenant}/users", q="lic")
    assert [u["external_id"] for u in substring.json()["items"]] == ["alice", "alicia"]
    unknown_agent = await viewer.get(f"/v1/tenants/{tenant}/users", agent="suport")
    assert unknown_agent.status_code == 200 and unknown_agent.json()["items"] == []


async def test_users_pages_follow_the_cursor_without_repeats(
    viewer: Api, bus: Bus, tenant: str
) -> None:
    users = [f"u{i:02d}" for i in range(7)]
    for user in users:
        await route(bus, Who(tenant, "support", user=user))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = await viewer.get(f"/v1/tenants/{tenant}/users", **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 3
        seen += [u["external_id"] for u in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        link = urlsplit(body["next"])
        assert link.path == f"/v1/tenants/{tenant}/users"
        assert parse_qs(link.query) == {"limit": ["3"], "cursor": [cursor]}
    assert seen == users and pages == 3


async def test_lists_of_another_tenant_are_404_like_any_unknown_resource(
    http: httpx.AsyncClient, jwt_secret: str, tenant: str
) -> None:
    stranger = Api(http, make_token(jwt_secret, tenant=f"{tenant}-other", role="admin"))
    desk = await stranger.get(f"/v1/tenants/{tenant}/desk/tickets")
    for path in ("agents", "users"):
        r = await stranger.get(f"/v1/tenants/{tenant}/{path}")
        assert r.status_code == 404 and r.json() == desk.json(), r.text


async def test_bad_list_parameters_are_422(viewer: Api, tenant: str) -> None:
    for params in ({"limit": 0}, {"limit": 501}, {"agent": "a b"}, {"q": ""}):
        r = await viewer.get(f"/v1/tenants/{tenant}/users", **params)
        assert r.status_code == 422 and error_code(r) == "validation_failed", (params, r.text)


async def test_a_cursor_never_leaves_its_list(viewer: Api, bus: Bus, tenant: str) -> None:
    """A cursor is a position inside the list it came from: one past the end is an empty
    page, and no cursor reaches another tenant's users (they sort right after these)."""
    await route(bus, Who(tenant, "support", user="alice"))
    await route(bus, Who(f"{tenant}-other", "support", user="alina"))
    for cursor in ("~", "support:web:alice", "\x7f"):
        r = await viewer.get(f"/v1/tenants/{tenant}/users", cursor=cursor)
        assert r.status_code == 200, r.text
        assert r.json()["items"] == [] and r.json()["next_cursor"] is None, (cursor, r.text)
    first = await viewer.get(f"/v1/tenants/{tenant}/users", cursor="a")
    assert [u["external_id"] for u in first.json()["items"]] == ["alice"]


async def test_what_was_stored_before_the_indexes_is_listed_after_the_backfill(
    viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support", user="old-timer")
    await publish_agent(store, who)
    await route(bus, who)
    # As an install stored them before the indexes existed: the same keys, in no index.
    await store.redis.zrem(agents_index_key(agent_tag(tenant, "support")), f"{tenant}:support")
    await store.redis.zrem(interactions_index_key(InteractionKeys(who.key).tag), who.key)
    assert (await viewer.get(f"/v1/tenants/{tenant}/agents")).json()["items"] == []
    assert (await viewer.get(f"/v1/tenants/{tenant}/users")).json()["items"] == []

    await store.redis.delete(LISTS_BACKFILLED_KEY)  # the service did it once at its start
    agents, interactions = await store.backfill_list_indexes()

    assert agents >= 1 and interactions >= 1
    listed = (await viewer.get(f"/v1/tenants/{tenant}/agents")).json()["items"]
    assert [a["agent_id"] for a in listed] == ["support"]
    users = (await viewer.get(f"/v1/tenants/{tenant}/users")).json()["items"]
    assert [u["external_id"] for u in users] == ["old-timer"]
    assert await store.backfill_list_indexes() == (0, 0)  # once per deployment
