"""Polling a transcript costs no body while nothing changed: its ETag names the newest turn,
and `If-None-Match` with it answers 304 until a turn arrives (the console's live transcript)."""

from __future__ import annotations

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.state.store import ModeStore
from tests.api.helpers import Api, publish_agent, route, user_path

pytestmark = pytest.mark.integration


async def test_transcript_answers_304_until_a_turn_arrives(
    viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await route(bus, who, "first")
    path = f"{user_path(who)}/agents/support/transcript"

    first = await viewer.get(path)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"')

    same = await viewer.http.get(
        path, headers={"Authorization": f"Bearer {viewer.token}", "If-None-Match": etag}
    )
    assert same.status_code == 304 and same.content == b"" and same.headers["ETag"] == etag

    await route(bus, who, "second")
    changed = await viewer.http.get(
        path, headers={"Authorization": f"Bearer {viewer.token}", "If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert [t["text"] for t in changed.json()["items"]] == ["first", "second"]
