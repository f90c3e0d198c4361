"""The web chat reads the handoff service's keys without importing it: the names agree."""

from __future__ import annotations

import pytest

from services.handoff.state.keys import InteractionKeys, ticket_key
from services.webchat import conversation


@pytest.mark.parametrize("ikey", ["acme:support:web:alice", "t:a:web:visitor-0f3a9c", "x:y:sms:+1"])
def test_the_web_chats_key_names_are_the_handoff_services(ikey: str) -> None:
    keys = InteractionKeys(ikey)
    assert conversation.state_key(ikey) == keys.state
    assert conversation.transcript_key(ikey) == keys.transcript
    assert conversation.ticket_key(ikey, "tk3-ab") == ticket_key(keys.tag, "tk3-ab")
