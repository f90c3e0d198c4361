"""The queue and ticket endpoints (R14-R18): shapes, roles, validation, versions, audit."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.state.store import ModeStore
from tests.api.conftest import TokenFactory
from tests.api.helpers import Api, error_code
from tests.support.tickets import hand_off, of, publish_queues_agent, queue_path, ticket_path

pytestmark = pytest.mark.integration

BILLING: dict[str, Any] = {
    "display_name": "Billing",
    "timezone": "Europe/Berlin",
    "hours": {"mon": ["09:00-17:00"], "tue": ["09:00\u201317:00"]},
    "closed_dates": ["2026-12-24"],
    "pickup_minutes": 10,
    "on_no_pickup": "notify",
}


async def test_queue_settings_are_versioned_audited_and_listed(
    editor: Api, viewer: Api, bus: Bus, tenant: str
) -> None:
    before = await viewer.get(queue_path(tenant, "billing"))
    assert before.status_code == 200
    assert (before.json()["configured"], before.json()["version"]) == (False, 0)
    assert before.json()["settings"]["hours"] is None  # the defaults: always open

    first = await editor.put(queue_path(tenant, "billing"), {**BILLING, "version": 0})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["configured"], body["version"], body["updated_by"]) == (True, 1, "operator:jane")
    assert body["settings"]["hours"]["tue"] == ["09:00-17:00"]  # the en dash, normalised
    assert body["status"]["waiting"] == 0 and body["status"]["pickups_last_hour"] == 0
    assert body["status"]["eta_minutes_next"] is None
    second = await editor.put(queue_path(tenant, "billing"), {**BILLING, "pickup_minutes": 3})
    assert second.json()["version"] == 2
    stale = await editor.put(queue_path(tenant, "billing"), {**BILLING, "version": 1})
    assert (stale.status_code, error_code(stale)) == (409, "version_conflict")

    listed = (await viewer.get(f"/v1/tenants/{tenant}/queues")).json()["items"]
    assert [(q["queue"], q["configured"], q["version"]) for q in listed] == [
        ("billing", True, 2),
        ("default", False, 0),
    ]
    audits = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("tenant_id") == tenant,
        count=2,
    )
    assert {(a["action"], a["target"], a["outcome"]) for a in audits} == {
        ("queue_update", "queue:billing", "applied")
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Base"}, "body.timezone"),
        ({"hours": {"mon": ["18:00-29:00"]}}, "body.hours.mon.0"),
        ({"hours": {"someday": ["09:00-10:00"]}}, "body.hours.someday.[key]"),
        ({"closed_dates": ["tomorrow"]}, "body.closed_dates.0"),
        ({"pickup_minutes": 0}, "body.pickup_minutes"),
        ({"on_no_pickup": "cry"}, "body.on_no_pickup"),
        ({"colour": "red"}, "body.colour"),
    ],
)
async def test_bad_queue_settings_are_422_with_the_field(
    editor: Api, tenant: str, change: dict[str, Any], field: str
) -> None:
    r = await editor.put(queue_path(tenant, "billing"), {**BILLING, **change})
    assert r.status_code == 422 and error_code(r) == "validation_failed"
    assert field in {f["loc"] for f in r.json()["error"]["fields"]}, r.json()


async def test_a_ticket_and_its_history_and_the_action_errors(
    editor: Api, viewer: Api, admin: Api, bus: Bus, store: ModeStore, tenant: str,
    token: TokenFactory,
) -> None:  # fmt: skip
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)
    ticket_id = (await hand_off(bus, who, queue="billing"))["ticket_id"]
    path = ticket_path(tenant, ticket_id)

    seen = await viewer.get(path)
    assert seen.status_code == 200
    ticket = seen.json()
    assert (ticket["queue"], ticket["status"], ticket["position"], ticket["assignee"]) == (
        "billing",
        "queued",
        1,
        None,
    )
    assert (ticket["agent_id"], ticket["channel"], ticket["external_id"]) == (
        "support",
        "web",
        "alice",
    )
    assert ticket["reason"] == "The user asked to talk to a person." and ticket["cause"] == "agent"
    assert [h["status"] for h in ticket["history"]] == ["queued"]

    assert (await viewer.post(ticket_path(tenant, ticket_id, "claim"))).status_code == 403
    unknown = await editor.post(ticket_path(tenant, ticket_id, "transfer"), {"queue": "nowhere"})
    assert (unknown.status_code, error_code(unknown)) == (409, "unknown_queue")
    same = await editor.post(ticket_path(tenant, ticket_id, "transfer"), {"queue": "billing"})
    assert (same.status_code, error_code(same)) == (409, "same_queue")
    idle = await editor.post(ticket_path(tenant, ticket_id, "release"))
    assert (idle.status_code, error_code(idle)) == (409, "not_assigned")
    stale = await editor.post(ticket_path(tenant, ticket_id, "claim"), {"ticket_version": 9})
    assert (stale.status_code, error_code(stale)) == (409, "version_conflict")

    assigned = await admin.post(
        ticket_path(tenant, ticket_id, "assign"), {"assignee": "bob", "display_name": "Bob"}
    )
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["assignee"], assigned.json()["assignee_name"]) == ("bob", "Bob")
    again = await admin.post(ticket_path(tenant, ticket_id, "assign"), {"assignee": "bob"})
    assert (again.status_code, error_code(again)) == (409, "already_assigned")
    moved = await editor.post(ticket_path(tenant, ticket_id, "transfer"), {"queue": "default"})
    assert moved.status_code == 200 and moved.json()["queue"] == "default"

    detail = (await viewer.get(path)).json()
    assert [(h["from_status"], h["status"], h["ticket_version"]) for h in detail["history"]] == [
        (None, "queued", 1),
        ("queued", "assigned", 2),
        ("assigned", "queued", 3),
    ]
    assert detail["history"][1]["actor"] == "operator:ada"  # the admin's token, not the body

    missing = await viewer.get(ticket_path(tenant, "tk1-" + "0" * 32))
    assert (missing.status_code, error_code(missing)) == (404, "ticket_not_found")
    garbage = await viewer.get(ticket_path(tenant, "not-a-ticket"))
    assert (garbage.status_code, error_code(garbage)) == (404, "ticket_not_found")
    outsider = Api(viewer.http, token("admin", tenant=f"{tenant}x"))
    hidden = await outsider.get(path)
    assert (hidden.status_code, error_code(hidden)) == (404, "ticket_not_found")
    # Each accepted action was audited once, in the same step as its TicketChanged.
    audits = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("target") == ticket_id,
        count=2,
    )
    assert [a["action"] for a in audits] == ["ticket_assign", "ticket_transfer"]
    assert len(bus.on(bus.topics.events, of(who, "ticket_changed"))) == 3


async def test_announce_teammate_tells_the_user_who_took_it(
    editor: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, announce_teammate=True)
    ticket_id = (await hand_off(bus, who))["ticket_id"]
    r = await editor.post(ticket_path(tenant, ticket_id, "claim"), {"display_name": "Jane D."})
    assert r.status_code == 200
    notices = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message"), count=2)
    assert notices[1]["text"] == "Jane D. from our team has joined the conversation."
    assert notices[1]["sender"] == "system"


async def test_agent_versions_take_the_new_handoff_fields(editor: Api, tenant: str) -> None:
    handoff = {
        "enabled": True,
        "queues": ["billing", "default"],
        "out_of_hours": "stay_with_ai",
        "waiting_notice_text": "You are number {position}; about {eta_minutes} min.",
        "announce_teammate": True,
    }
    r = await editor.post(f"/v1/tenants/{tenant}/agents/support/versions", {"handoff": handoff})
    assert r.status_code == 201, r.text
    got = r.json()["handoff"]
    assert {k: got[k] for k in handoff} == handoff
    for bad, field in (
        ({"queues": ["a b"]}, "body.handoff.queues.0"),
        ({"queues": ["x", "x"]}, "body.handoff.queues"),
        ({"out_of_hours": "sleep"}, "body.handoff.out_of_hours"),
    ):
        r = await editor.post(
            f"/v1/tenants/{tenant}/agents/support/versions", {"handoff": {**handoff, **bad}}
        )
        assert r.status_code == 422, (bad, r.text)
        assert field in {f["loc"] for f in r.json()["error"]["fields"]}, (bad, r.json())
