"""`handoffctl chat` and `handoffctl desk` against the real stack, as processes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from devstack.harness.events import Who, key_of
from devstack.harness.sandbox import NOTICE, publish_known
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.integration


async def test_chat_shows_ai_and_notice_and_the_desk_sees_the_file_and_replies(
    stack: Stack, tenant: str, workdir: Path
) -> None:
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support", user="carol")
    await publish_known(stack.store, who)
    watcher = stack.popen(
        "-m", "services.cli.main", "desk", "watch", "--tenant", tenant, "--for", "40",
        cwd=workdir,
    )  # fmt: skip
    try:
        chat = stack.cli(
            "chat", "--tenant", tenant, "--user", "carol",
            "-m", "hello", "-m", "I want to talk to a person", "--wait", "20",
            cwd=workdir,
        )  # fmt: skip
        assert chat.returncode == 0, chat.stdout + chat.stderr
        lines = chat.stdout.splitlines()
        assert any(" AI " in line and "Hello!" in line for line in lines), chat.stdout
        assert any(" notice " in line and NOTICE in line for line in lines), chat.stdout

        receipt = workdir / "receipt.txt"
        receipt.write_text("Order 42: 2 x blue mug\n")
        follow_up = stack.cli(
            "chat", "--tenant", tenant, "--user", "carol", "--attach", str(receipt),
            "-m", "Here is my receipt", "--wait", "0.5",
            cwd=workdir,
        )  # fmt: skip
        assert follow_up.returncode == 0, follow_up.stdout + follow_up.stderr
        routed = await bus.wait_for(
            t.human_queue,
            lambda v: (
                v.get("type") == "routed_message"
                and key_of(v) == who.key
                and v["message"]["text"] == "Here is my receipt"
            ),
        )
        [attachment] = routed[0]["message"]["attachments"]
        assert attachment["name"] == "receipt.txt" and attachment["content_type"] == "text/plain"
        async with httpx.AsyncClient() as client:  # served by the web chat gateway
            assert (await client.get(attachment["url"])).text == "Order 42: 2 x blue mug\n"

        reply = stack.cli(
            "desk", "reply", "--tenant", tenant, "--user", "carol", "Hi Carol, Jane here.",
            cwd=workdir,
        )  # fmt: skip
        assert reply.returncode == 0, reply.stdout + reply.stderr
        [sent] = await bus.wait_for(
            t.outbound,
            lambda v: key_of(v) == who.key and v.get("sender") == "human",
        )
        assert sent["text"] == "Hi Carol, Jane here." and sent["conversation_id"]
        turns = await stack.store.transcript(who.key, 10)
        assert (turns[-1]["role"], turns[-1]["text"]) == ("human", "Hi Carol, Jane here.")
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=30)
    assert "ticket" in out and "The user asked to talk to a person." in out, out
    assert "Here is my receipt" in out and "receipt.txt" in out, out


async def test_desk_reply_refuses_while_the_ai_has_the_conversation(
    stack: Stack, tenant: str, workdir: Path
) -> None:
    who = Who(tenant, "support", user="dave")
    await publish_known(stack.store, who)
    message = who.message("hello")
    await stack.bus.send(stack.bus.topics.inbound, message, key=who.key)
    await stack.bus.wait_routed(message["event_id"])

    reply = stack.cli("desk", "reply", "--tenant", tenant, "--user", "dave", "hi", cwd=workdir)

    assert reply.returncode != 0
    assert "the AI has this conversation" in reply.stdout + reply.stderr
    bad = stack.cli("chat", "--tenant", "no spaces", "-m", "x", cwd=workdir)
    assert bad.returncode != 0 and "tenant" in bad.stdout + bad.stderr


async def test_desk_reply_to_a_user_who_never_wrote_says_so(
    stack: Stack, tenant: str, workdir: Path
) -> None:
    await publish_known(stack.store, Who(tenant, "support", user="nobody"))

    reply = stack.cli("desk", "reply", "--tenant", tenant, "--user", "nobody", "hi", cwd=workdir)
    forced = stack.cli(
        "desk", "reply", "--tenant", tenant, "--user", "nobody", "--force", "hi", cwd=workdir
    )  # fmt: skip

    for run in (reply, forced):
        out = run.stdout + run.stderr
        assert run.returncode != 0
        assert "nobody has never written to support" in " ".join(out.split()), out
        assert "the AI has this conversation" not in out


async def test_desk_watch_opens_with_the_named_agents_tickets_only(
    stack: Stack, tenant: str, workdir: Path
) -> None:
    mine, other = Who(tenant, "support", user="erin"), Who(tenant, "sales", user="fay")
    for who in (mine, other):
        await publish_known(stack.store, who)
        command = who.command("to_human", reason=f"{who.agent} needs a person")
        await stack.bus.send(stack.bus.topics.commands, command, key=who.key)
        await stack.bus.wait_for(
            stack.bus.topics.events, lambda v, c=command: v.get("command_id") == c["command_id"]
        )

    watch = stack.cli(
        "desk", "watch", "--tenant", tenant, "--agent", "support", "--for", "1", cwd=workdir
    )  # fmt: skip

    out = watch.stdout + watch.stderr
    assert watch.returncode == 0, out
    assert mine.key in out and "support needs a person" in out, out
    assert other.key not in out and "sales needs a person" not in out, out
