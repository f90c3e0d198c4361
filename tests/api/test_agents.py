"""Agent settings over HTTP: Apply (new immutable version), Publish, and the agent view."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.harness.bus import Bus
from services.handoff.agents import validate_config
from services.handoff.state.store import ModeStore
from tests.api.helpers import Api, agent_path, error_code

pytestmark = pytest.mark.integration

GOOD = {
    "enabled": True,
    "idle_timeout_minutes": 30,
    "instructions": "Hand off when the user asks for a refund over 100 EUR.",
    "notice_text": "Jane from support will take it from here.",
    "return_notice_text": "You're back with the Acme assistant.",
}
# The fields of the handoff block a version has when the request leaves them out (R14-R17).
DEFAULTS = {
    "queues": [],
    "out_of_hours": "queue",
    "waiting_notice_text": "",
    "announce_teammate": False,
}


async def test_apply_publish_and_read_an_agent(
    editor: Api, viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    path = agent_path(tenant, "support")

    first = await editor.post(f"{path}/versions", {"handoff": GOOD})
    second = await editor.post(
        f"{path}/versions", {"handoff": {"enabled": False, "idle_timeout_minutes": None}}
    )

    assert first.status_code == second.status_code == 201, first.text
    assert first.headers["location"] == path
    v1 = first.json()
    assert (v1["version"], v1["handoff"], v1["published"]) == (1, {**DEFAULTS, **GOOD}, False)
    assert v1["created_by"] == "operator:jane" and v1["created_at"]
    assert second.json()["version"] == 2
    assert second.json()["handoff"]["notice_text"]  # the default notice

    published = await editor.post(f"{path}/versions/1/publish")
    assert published.status_code == 200, published.text
    assert published.json()["published_version"] == 1

    r = await viewer.get(path)
    assert r.status_code == 200
    view = r.json()
    assert (view["tenant_id"], view["agent_id"], view["published_version"]) == (
        tenant,
        "support",
        1,
    )
    assert [(v["version"], v["published"]) for v in view["versions"]] == [(2, False), (1, True)]
    assert view["versions"][1]["handoff"] == {**DEFAULTS, **GOOD}
    # R2 reads the published version: handoff is on.
    _, live = await store.agent_versions(tenant, "support")
    assert live == 1
    audits = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("tenant_id") == tenant,
        count=3,
    )
    assert sorted((a["action"], a["target"], a["outcome"]) for a in audits) == [
        ("agent_apply", "support@v1", "applied"),
        ("agent_apply", "support@v2", "applied"),
        ("agent_publish", "support@v1", "published"),
    ]


async def test_unknown_agent_and_version_are_404(editor: Api, tenant: str) -> None:
    path = agent_path(tenant, "ghost")
    r = await editor.get(path)
    assert r.status_code == 404 and error_code(r) == "agent_not_found"
    p = await editor.post(f"{path}/versions/3/publish")
    assert p.status_code == 404 and error_code(p) == "unknown_version"
    await editor.post(f"{path}/versions", {"handoff": GOOD})
    p2 = await editor.post(f"{path}/versions/2/publish")
    assert p2.status_code == 404 and error_code(p2) == "unknown_version"
    zero = await editor.post(f"{path}/versions/0/publish")
    assert zero.status_code == 422


@pytest.mark.parametrize(
    ("handoff", "loc"),
    [
        ({**GOOD, "idle_timeout_minutes": 0}, "body.handoff.idle_timeout_minutes"),
        ({**GOOD, "idle_timeout_minutes": 10081}, "body.handoff.idle_timeout_minutes"),
        ({**GOOD, "idle_timeout_minutes": "soon"}, "body.handoff.idle_timeout_minutes"),
        ({**GOOD, "instructions": "x" * 2001}, "body.handoff.instructions"),
        ({**GOOD, "notice_text": ""}, "body.handoff.notice_text"),
        ({**GOOD, "notice_text": "  "}, "body.handoff.notice_text"),
        ({**GOOD, "notice_text": "x" * 1001}, "body.handoff.notice_text"),
        ({**GOOD, "return_notice_text": " "}, "body.handoff.return_notice_text"),
        ({k: v for k, v in GOOD.items() if k != "enabled"}, "body.handoff.enabled"),
        ({**GOOD, "enabeld": True}, "body.handoff.enabeld"),
    ],
)
async def test_invalid_settings_are_422_naming_the_field(
    editor: Api, tenant: str, handoff: dict[str, Any], loc: str
) -> None:
    r = await editor.post(f"{agent_path(tenant, 'support')}/versions", {"handoff": handoff})
    assert r.status_code == 422, r.text
    assert error_code(r) == "validation_failed"
    assert [f["loc"] for f in r.json()["error"]["fields"]] == [loc]
    assert loc in r.json()["error"]["detail"]


async def test_a_field_error_names_its_type_and_bound_never_the_value(
    editor: Api, tenant: str
) -> None:
    """The console words a field error by its `type` and `ctx` (ui.js fieldProblem)."""
    sent = "secret " * 150
    handoff = {**GOOD, "waiting_notice_text": sent, "idle_timeout_minutes": 0, "notice_text": " "}
    r = await editor.post(f"{agent_path(tenant, 'support')}/versions", {"handoff": handoff})
    assert r.status_code == 422, r.text
    fields = {f["loc"]: f for f in r.json()["error"]["fields"]}
    too_long = fields["body.handoff.waiting_notice_text"]
    assert (too_long["type"], too_long["ctx"]) == ("string_too_long", {"max_length": 1000})
    too_small = fields["body.handoff.idle_timeout_minutes"]
    assert (too_small["type"], too_small["ctx"]) == ("greater_than_equal", {"ge": 1})
    blank = fields["body.handoff.notice_text"]
    assert blank["type"] == "value_error" and "ctx" not in blank  # the exception is left out
    assert "secret" not in r.text


async def test_limits_are_inclusive(editor: Api, tenant: str) -> None:
    path = f"{agent_path(tenant, 'support')}/versions"
    for handoff in (
        {**GOOD, "idle_timeout_minutes": 1, "instructions": "", "notice_text": "x"},
        {
            **GOOD,
            "idle_timeout_minutes": 10080,
            "instructions": "i" * 2000,
            "notice_text": "n" * 1000,
        },
    ):
        r = await editor.post(path, {"handoff": handoff})
        assert r.status_code == 201, r.text


def test_the_cli_validates_with_the_same_rules() -> None:
    with pytest.raises(ValueError, match="idle_timeout_minutes"):
        validate_config(True, 0, "", "ok")
    with pytest.raises(ValueError, match="instructions"):
        validate_config(True, None, "x" * 2001, "ok")
    with pytest.raises(ValueError, match="notice_text"):
        validate_config(True, None, "", "")
    assert validate_config(True, 10080, "", "ok").idle_timeout_minutes == 10080
