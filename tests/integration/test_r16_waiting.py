"""R16 waiting: the user's place in line and an honest ETA, on handoff and when the place
improves (at most once a "minute", a second in tests)."""

from __future__ import annotations

import math
import statistics
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.domain.tickets import new_ticket
from services.handoff.state.keys import queues_key
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token
from tests.support.tickets import hand_off, of, publish_queues_agent, queue_path, ticket_path

pytestmark = pytest.mark.integration
MINUTE_MS = 1000  # HANDOFF_MINUTE_SECONDS=1 in the test stack


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


async def notices_of(bus: Bus, who: Who, count: int = 1) -> list[str]:
    found = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message"), count=count)
    return [str(n["text"]) for n in found]


async def test_r16_position_and_eta_after_three_pickups_at_known_times(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    users = [Who(tenant, "support", user=f"u{n}") for n in range(3)]
    await publish_queues_agent(store, users[0], queues=("default",))
    # No pickups yet: said plainly, never a made-up number.
    await hand_off(bus, users[0])
    [first] = await notices_of(bus, users[0])
    assert first.endswith("You're number 1 in line. We don't have a wait estimate yet.")
    # Three pickups in the last hour, whose waits are known (5, 7 and 9 minutes), recorded
    # the way a claim records them.
    now = await store.redis_now_ms(queues_key(tenant))
    for n, wait in enumerate((5, 7, 9)):
        done = new_ticket(f"tk0-{n:032x}", f"{tenant}:support:web:old{n}", tenant, "default",
                          now - wait * MINUTE_MS, "r", "agent")  # fmt: skip
        await store.record_pickup(tenant, "default", done, wait * MINUTE_MS, now - n)

    await hand_off(bus, users[1])
    await hand_off(bus, users[2])

    # Nobody is online: the line is shared by one. Median 7 x position.
    [second] = await notices_of(bus, users[1])
    [third] = await notices_of(bus, users[2])
    assert second.endswith("You're number 2 in line. The expected wait is about 14 minutes.")
    assert third.endswith("You're number 3 in line. The expected wait is about 21 minutes.")
    headers = {"Authorization": f"Bearer {make_token(jwt_secret, tenant, role='viewer')}"}
    status = (await http.get(queue_path(tenant, "default"), headers=headers)).json()["status"]
    assert (status["waiting"], status["pickups_last_hour"]) == (3, 3)
    assert (status["pickup_p50_seconds"], status["pickup_p90_seconds"]) == (7.0, 9.0)
    assert status["teammates_online"] == 0 and status["eta_minutes_next"] == 28


async def test_r16_real_claims_feed_the_estimate(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    users = [Who(tenant, "support", user=f"u{n}") for n in range(5)]
    await publish_queues_agent(store, users[0], queues=("default",))
    headers = {"Authorization": f"Bearer {make_token(jwt_secret, tenant, sub='jane')}"}
    for who in users[:3]:
        opened = await hand_off(bus, who)
        claim = await http.post(ticket_path(tenant, opened["ticket_id"], "claim"), headers=headers)
        assert claim.status_code == 200
    now = await store.redis_now_ms(queues_key(tenant))
    waits = await store.pickup_waits(tenant, "default", now - 60 * MINUTE_MS)
    assert len(waits) == 3

    await hand_off(bus, users[3])
    await hand_off(bus, users[4])

    # jane is online (she claimed): the line is hers alone.
    expected = max(1, math.ceil(statistics.median(waits) * 2 / MINUTE_MS))
    [text] = await notices_of(bus, users[4])
    unit = "minute" if expected == 1 else "minutes"
    assert text.endswith(f"You're number 2 in line. The expected wait is about {expected} {unit}.")


async def test_r16_a_better_place_is_told_once(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    ahead, behind = Who(tenant, "support", user="ahead"), Who(tenant, "support", user="behind")
    await publish_queues_agent(store, ahead, queues=("default",))
    first = await hand_off(bus, ahead)
    second = await hand_off(bus, behind)
    assert second["position"] == 2
    headers = {"Authorization": f"Bearer {make_token(jwt_secret, tenant, sub='jane')}"}

    claimed = await http.post(ticket_path(tenant, first["ticket_id"], "claim"), headers=headers)
    assert claimed.status_code == 200

    texts = await notices_of(bus, behind, count=2)
    assert texts[1].startswith("You're number 1 in line."), texts
    # A later step of the same ticket shares its outbox: once it is out, so is every notice
    # sent before it.
    taken = await http.post(ticket_path(tenant, second["ticket_id"], "claim"), headers=headers)
    assert taken.status_code == 200
    await bus.wait_for(bus.topics.events, of(behind, "ticket_changed", status="assigned"))
    assert len(bus.on(bus.topics.outbound, of(behind, "outbound_message"))) == 2
    told = [t["text"] for t in await store.transcript(behind.key, 20) if t["role"] == "system"]
    assert told == texts  # in the transcript the desk shows, as the user saw them
