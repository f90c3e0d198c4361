"""R17 opening hours: outside them the handoff says when people are back, or the AI keeps
the user (`stay_with_ai`). The clock is Redis TIME shifted per tenant (HANDOFF_TEST_CLOCK)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.domain.tickets import QueueSettings
from services.handoff.state.store import ModeStore
from tests.support.tickets import hand_off, of, publish_queues_agent, send_handoff, set_clock

pytestmark = pytest.mark.integration

WEEKDAYS = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


async def configure(store: ModeStore, tenant: str, zone: str, **extra: object) -> None:
    settings = QueueSettings.model_validate({"timezone": zone, "hours": WEEKDAYS, **extra})
    await store.put_queue(tenant, "default", settings, "2026-01-01T00:00:00Z", "test", None)


@pytest.mark.parametrize(
    ("zone", "now", "back"),
    [
        # Saturday before the spring change in Berlin: back on Monday at 09:00 CEST.
        ("Europe/Berlin", datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), "Monday 30 March, 09:00"),
        # Friday evening before the autumn change in New York: back Monday 09:00 EST.
        ("America/New_York", datetime(2026, 10, 30, 18, 0, tzinfo=NEW_YORK), "Monday 2 November"),
    ],
)
async def test_r17_out_of_hours_the_handoff_notice_says_when_the_team_is_back(
    bus: Bus, store: ModeStore, tenant: str, zone: str, now: datetime, back: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("default",))
    await configure(store, tenant, zone)
    await set_clock(store, tenant, now)

    opened = await hand_off(bus, who)

    assert opened["status"] == "queued"
    [notice] = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message"))
    assert f"back {back}" in notice["text"] and f"({zone})" in notice["text"], notice["text"]
    assert "09:00" in notice["text"]


async def test_r17_stay_with_ai_keeps_the_user_and_says_when_people_are_available(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("default",), out_of_hours="stay_with_ai")
    await configure(store, tenant, "Europe/Berlin", closed_dates=["2026-03-30"])
    # Sunday night: Monday is closed (a holiday), so people are back on Tuesday.
    await set_clock(store, tenant, datetime(2026, 3, 29, 23, 0, tzinfo=BERLIN))

    command = await send_handoff(bus, who)

    [rejected] = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == command["command_id"]
    )
    assert (rejected["type"], rejected["code"]) == ("command_rejected", "out_of_hours")
    [away] = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message"))
    assert away["sender"] == "system"
    assert "Tuesday 31 March, 09:00 (Europe/Berlin)" in away["text"], away["text"]
    assert (await store.read_state(who.key)).mode == "ai"
    message = who.message("ok, then you help me")
    await bus.send(bus.topics.inbound, message, key=who.key)
    topic, _ = await bus.wait_routed(message["event_id"])
    assert topic == bus.topics.ai_requests
    assert bus.on(bus.topics.events, of(who, "ticket_changed")) == []


async def test_r17_inside_hours_stay_with_ai_hands_off_as_usual(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("default",), out_of_hours="stay_with_ai")
    await configure(store, tenant, "Europe/Berlin")
    # Monday just after the spring change, 09:00 CEST: open.
    await set_clock(store, tenant, datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN))
    opened = await hand_off(bus, who)
    [notice] = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message"))
    assert opened["status"] == "queued" and "away" not in notice["text"]
