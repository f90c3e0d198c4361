"""The four paths a team checks before publishing an agent with handoff, run against a live
stack (the seed's test checklist):

1. the agent hands off when the configured condition appears;
2. the handoff message is clear (it is shown);
3. follow-up user messages are recorded but not answered by AI;
4. the user returns to AI after the idle timeout, and can be switched back manually;

and the human side (R14-R20), through the operator API as a desk would use it:

5. a billing problem is handed to the `billing` queue, with the user's place in line;
6. two teammates claim the ticket at once: exactly one gets it;
7. the teammate replies and resolves with a note: the AI takes the user back knowing it;
8. out of hours, the handoff notice says when the team is back.

The demo talks to the stack the way its parts talk to each other: `UserMessage`s on
chat.inbound as a channel, an operator's `HandoffCommand` on handoff.operator-commands, and it
reads what comes out. Its agent (tenant `demo` by default) gets a published version with a one
minute idle timeout and an instruction line naming the configured condition; each run talks
as a new user.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from schemas import EndUser, HandoffCommand, InteractionIds, UserMessage, interaction_key
from services.agent.store import AgentStore
from services.common.aiokafka_edge import idempotent_producer, send_idempotent
from services.common.files import FileStore
from services.common.kafka import Output
from services.demo.watch import Watch
from services.handoff.domain.modes import HandoffConfig
from services.handoff.state.store import ModeStore
from services.webchat.settings import WebchatSettings

NOTICE = (
    "You're now chatting with a human teammate from our support team. They'll reply here "
    "shortly; the assistant stays quiet until then."
)
INSTRUCTIONS = (
    "Hand off when: the user mentions a lawyer, legal action or a formal complaint.\n"
    "Hand off when the user asks for a person."
)
CONFIG = HandoffConfig(
    enabled=True,
    idle_timeout_minutes=1,
    instructions=INSTRUCTIONS,
    notice_text=NOTICE,
    queues=("default", "billing"),
)
BILLING = "I was charged twice for my order, I want to talk to a person."
NOTE = "Refunded the second charge."
CONDITION = "I'm not happy with my contract: my lawyer is preparing legal action."
REPLY_S = 20.0  # how long an answer, a handoff or a routing may take on a healthy stack


class PathFailedError(AssertionError):
    pass


@dataclass
class Outcome:
    number: int
    title: str
    passed: bool | None = None  # None: skipped
    saw: list[str] = field(default_factory=list)
    error: str = ""


def _quote(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return f'"{text[:width]}…"' if len(text) > width else f'"{text}"'


class Demo:
    def __init__(
        self,
        settings: WebchatSettings,
        tenant: str,
        agent: str,
        console: Console,
        api: httpx.AsyncClient,
        tokens: Callable[[str], str],
    ) -> None:
        self.s = settings
        self.api = api  # the operator API, as a desk uses it
        self.tokens = tokens  # an editor's token for a teammate id
        self.topics = settings.topics
        self.ids = InteractionIds(
            tenant_id=tenant,
            agent_id=agent,
            user=EndUser(channel="web", external_id=f"demo-{secrets.token_hex(4)}"),
        )
        self.ikey = interaction_key(self.ids)
        self.console = console
        self.store = ModeStore.from_settings(settings)
        self.watch = Watch(settings, self.topics, self.ikey)
        self.producer: AIOKafkaProducer = idempotent_producer(settings)
        self.conversation = f"c-demo-{secrets.token_hex(4)}"
        self.version = 0
        self.hello = ""  # the message the AI answered before the handoff
        self.changed: dict[str, Any] = {}  # the handoff's ModeChanged
        self.last_routed: dict[str, Any] = {}  # the last follow-up, as routed
        self.ticket: dict[str, Any] = {}  # path 5's TicketChanged (queued)
        self.owner = ""  # who won path 6's claim
        self._outcome: Outcome | None = None

    # Plumbing ------------------------------------------------------------------------------

    async def __aenter__(self) -> Demo:
        await self.watch.start()
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()
        await self.watch.stop()
        await self.store.close()

    def saw(self, line: str) -> None:
        assert self._outcome is not None
        self._outcome.saw.append(line)
        self.console.print(f"   {escape(line)}", highlight=False)

    def check(self, ok: bool, failure: str) -> None:
        if not ok:
            raise PathFailedError(failure)

    async def _send(self, topic: str, event: BaseModel) -> None:
        await send_idempotent(self.producer, [Output.of(topic, self.ikey, event)])

    async def say(self, text: str, attachments: list[Any] | None = None) -> str:
        message = UserMessage(
            **self.ids.model_dump(),
            event_id=f"demo-{uuid.uuid4().hex[:16]}",
            conversation_id=self.conversation,
            text=text,
            attachments=attachments or [],
            sent_at=datetime.now(UTC),
        )
        await self._send(self.topics.inbound, message)
        files = f" (+ {len(message.attachments)} file)" if message.attachments else ""
        self.saw(f"user   → {_quote(text)}{files}")
        return message.event_id

    async def ai_answer(self, event_id: str) -> dict[str, Any]:
        answer = await self.watch.first(
            self.topics.outbound,
            lambda v: v.get("sender") == "ai" and v.get("in_reply_to") == event_id,
            REPLY_S,
            "AI answer (is the agent running? `make run` starts it)",
        )
        self.saw(f"AI     ← {_quote(answer['text'])}")
        return answer

    async def mode_change(self, to_mode: str, cause: str, after: int) -> dict[str, Any]:
        changed = await self.watch.first(
            self.topics.events,
            lambda v: (
                v.get("type") == "mode_changed"
                and v["to_mode"] == to_mode
                and v["cause"] == cause
                and v["state_version"] > after
            ),
            REPLY_S,
            f"ModeChanged to {to_mode} (cause {cause})",
        )
        self.saw(
            f"mode   {changed['from_mode']} → {changed['to_mode']}, cause {changed['cause']}, "
            f"actor {changed['actor']}, state version {changed['state_version']}"
        )
        return changed

    # Set-up ------------------------------------------------------------------------------

    async def publish_demo_version(self) -> str:
        """Applies and publishes the demo's version unless it is already the published one."""
        t, a = self.ids.tenant_id, self.ids.agent_id
        versions, published = await self.store.agent_versions(t, a)
        current = next((v for v in versions if v.version == published), None)
        if current is not None and current.handoff == CONFIG:
            self.version = current.version
            await self._agent_knows_version()
            return f"{t}/{a}: published version {self.version} is the demo's"
        await self.store.load_functions()
        now = datetime.now(UTC).isoformat()
        self.version = await self.store.apply_agent_version(t, a, CONFIG, now, "demo")
        await self.store.publish_agent_version(t, a, self.version, "demo")
        await self._agent_knows_version()
        return f"{t}/{a}: applied and published version {self.version}"

    async def _agent_knows_version(self) -> None:
        """The reference agent learns a Publish from handoff.events, a moment after it is
        made: the paths start once it knows the demo's version (it shares this Redis)."""
        agent = AgentStore(self.store.redis)
        deadline = asyncio.get_running_loop().time() + REPLY_S
        while (known := await agent.published(self.ids.tenant_id, self.ids.agent_id)) is None or (
            known.version != self.version
        ):
            if asyncio.get_running_loop().time() > deadline:
                raise PathFailedError(
                    f"the agent did not learn version {self.version} from handoff.events "
                    f"within {REPLY_S:.0f} s: is services.agent running?"
                )
            await asyncio.sleep(0.1)  # polling interval of the condition

    # The paths -----------------------------------------------------------------------------

    async def path1_hands_off(self) -> None:
        self.hello = await self.say("Hi! What are your opening hours?")
        await self.ai_answer(self.hello)
        self.saw(f"configured condition: {INSTRUCTIONS.splitlines()[0]!r}")
        trigger = await self.say(CONDITION)
        command = await self.watch.first(
            self.topics.commands,
            lambda v: v.get("source") == "agent",
            REPLY_S,
            "HandoffCommand from the agent",
        )
        self.saw(f"agent  request_handoff: actor {command['actor']}, {_quote(command['reason'])}")
        changed = await self.mode_change("human", "agent", 0)
        self.check(changed["command_id"] == command["command_id"], "the change is not the agent's")
        self.check(
            command["actor"] == f"agent:{self.ids.agent_id}@{self.version}",
            f"actor {command['actor']} is not the published version {self.version}",
        )
        replies = self.watch.on(self.topics.agent_replies, lambda v: v["in_reply_to"] == trigger)
        self.check(not replies, "the agent also answered the message it handed off")
        self.saw("no AI answer to that message: the agent called the tool instead")
        self.changed = changed

    async def path2_notice(self) -> None:
        notice = await self.watch.first(
            self.topics.outbound,
            lambda v: v.get("sender") == "system",
            REPLY_S,
            "handoff notice to the user",
        )
        self.saw(f"notice ← {_quote(notice['text'], 200)}")
        self.check(
            notice["text"].startswith(NOTICE) and "in line" in notice["text"],
            "the notice is not the published version's text and the place in line (R16)",
        )
        ticket = await self.watch.first(
            self.topics.human_queue,
            lambda v: v.get("type") == "handoff_ticket",
            REPLY_S,
            "HandoffTicket on the human queue",
        )
        turns = [t["text"] for t in ticket["transcript"]]
        self.saw(
            f"ticket for the desk: reason {_quote(ticket['reason'])}, {len(turns)} transcript "
            "turns, ending with the notice"
        )
        self.check(CONDITION in turns, "the ticket's transcript misses the user's message")
        self.check(
            turns[-1] == notice["text"], "the ticket's transcript does not end with the notice"
        )
        notices = self.watch.on(self.topics.outbound, lambda v: v.get("sender") == "system")
        self.check(len(notices) == 1, f"{len(notices)} notices sent, expected exactly one")

    async def path3_follow_ups(self) -> None:
        files = FileStore(self.s.webchat_data_dir.resolve(), self.s.webchat_base_url)
        contract = files.save(b"Contract no. 12345, signed 2026-01-05.\n", "contract.txt", None)
        sent = [
            await self.say("Here is my contract.", [contract]),
            await self.say("Are you still there?"),
        ]
        for event_id in sent:

            def this(v: dict[str, Any], e: str = event_id) -> bool:
                return bool(v.get("message", {}).get("event_id") == e)

            routed = await self.watch.first(
                self.topics.human_queue, this, REPLY_S, "routing of the follow-up"
            )
            self.check(routed["routing"]["mode"] == "human", "a follow-up was routed as AI")
            self.last_routed = routed
        to_ai = self.watch.on(self.topics.ai_requests, lambda v: v["message"]["event_id"] in sent)
        self.check(not to_ai, "a follow-up reached the AI")
        self.saw("both follow-ups went to chat.human-queue, none to chat.ai-requests")
        turns = await self.store.transcript(self.ikey, 50)
        recorded = [t for t in turns if t["event_id"] in sent]
        self.check(len(recorded) == 2, f"{len(recorded)} of 2 follow-ups in the transcript")
        self.check(
            [a["name"] for a in recorded[0]["attachments"]] == ["contract.txt"],
            "the attachment is not on its turn in the transcript",
        )
        self.saw(f"transcript: both recorded, the file on its turn ({contract.url})")
        since = self.changed["state_version"]
        ai_after = self.watch.on(
            self.topics.outbound,
            lambda v: v.get("sender") == "ai" and v.get("in_reply_to") != self.hello,
        )
        self.check(not ai_after, f"{len(ai_after)} AI message(s) after the handoff")
        self.saw(f"no AI message since the handoff (state version {since})")

    async def path4_back_to_ai(self) -> None:
        expires = datetime.fromisoformat(self.last_routed["routing"]["expires_at"])
        left = (expires - datetime.now(UTC)).total_seconds()
        changed = self.changed
        lasts = datetime.fromisoformat(changed["expires_at"]) - datetime.fromisoformat(
            changed["changed_at"]
        )
        minute = lasts.total_seconds() / changed["idle_timeout_minutes"]
        self.saw(
            f"idle timeout {changed['idle_timeout_minutes']} minute ({minute:.0f} s on this "
            f"stack): human mode ends at {expires.astimezone():%H:%M:%S}, in {max(left, 0):.0f} s"
        )
        if minute >= 30:
            self.console.print(
                "   [dim]tip: `make run MINUTE=5` (HANDOFF_MINUTE_SECONDS=5) makes a minute "
                "last 5 s, and this demo take a few seconds[/]"
            )
        self.console.print("   [dim]waiting for the idle timeout…[/]")
        await self.watch.first(
            self.topics.events,
            lambda v: v.get("type") == "mode_changed" and v["cause"] == "timeout",
            max(left, 0) + REPLY_S,
            "ModeChanged with cause timeout",
        )
        timeout_change = self.watch.on(self.topics.events, lambda v: v.get("cause") == "timeout")[0]
        self.saw(
            f"mode   human → ai, cause timeout, state version {timeout_change['state_version']}"
        )
        returned = await self.watch.first(
            self.topics.outbound,
            lambda v: v.get("sender") == "system" and v.get("text") == CONFIG.return_notice_text,
            REPLY_S,
            "return notice to the user (R20)",
        )
        self.saw(f"notice ← {_quote(returned['text'], 200)}")
        back = await self.say("Hello again, is the assistant back?")
        await self.ai_answer(back)
        self.saw("manual switch back: hand off again, then an operator switches to AI")
        await self.say("I want to talk to a person")
        handed = await self.mode_change("human", "agent", timeout_change["state_version"])
        operator = HandoffCommand(
            **self.ids.model_dump(),
            command_id=f"demo-op-{uuid.uuid4().hex[:12]}",
            action="to_ai",
            source="operator",
            actor="operator:demo",
            reason="The demo switches the user back to the AI.",
            requested_at=datetime.now(UTC),
        )
        await self._send(self.topics.operator_commands, operator)
        self.saw("operator → to_ai (operator:demo)")
        self.changed = await self.mode_change("ai", "operator", handed["state_version"])
        last = await self.say("Thanks! How do refunds work?")
        await self.ai_answer(last)

    async def call(self, method: str, path: str, sub: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens(sub)}"}
        return await self.api.request(method, path, json=body, headers=headers)

    async def path5_billing_queue(self) -> None:
        await self.say(BILLING)
        handed = await self.mode_change("human", "agent", self.changed["state_version"])
        self.changed = handed
        ticket = await self.watch.first(
            self.topics.human_queue,
            lambda v: v.get("type") == "handoff_ticket" and v["command_id"] == handed["command_id"],
            REPLY_S,
            "HandoffTicket of this handoff",
        )
        queued = await self.watch.first(
            self.topics.events,
            lambda v: v.get("type") == "ticket_changed" and v["ticket_id"] == ticket["ticket_id"],
            REPLY_S,
            "TicketChanged (queued)",
        )
        self.check(queued["queue"] == "billing", f"queued in {queued['queue']}, not billing")
        self.saw(f"ticket {queued['ticket_id']} queued in billing, position {queued['position']}")
        notice = await self.watch.first(
            self.topics.outbound,
            lambda v: v.get("sender") == "system" and "in line" in v.get("text", ""),
            REPLY_S,
            "the handoff notice with the place in line (R16)",
        )
        self.saw(f"notice ← {_quote(notice['text'], 200)}")
        self.ticket = queued

    async def path6_claim_race(self) -> None:
        path = f"/v1/tenants/{self.ids.tenant_id}/tickets/{self.ticket['ticket_id']}/claim"
        jane, sam = await asyncio.gather(
            self.call("POST", path, "jane", {"display_name": "Jane"}),
            self.call("POST", path, "sam", {"display_name": "Sam"}),
        )
        answers = {"jane": jane, "sam": sam}
        won = [who for who, r in answers.items() if r.status_code == 200]
        lost = [r for r in answers.values() if r.status_code == 409]
        self.check(len(won) == 1 and len(lost) == 1, f"claims answered {jane} and {sam}")
        code = lost[0].json()["error"]["code"]
        self.check(code == "already_assigned", f"the losing claim said {code}")
        self.owner = won[0]
        self.saw(f"claims by jane and sam at once: {self.owner} got it, the other 409 {code}")

    async def path7_resolve_with_context(self) -> None:
        user = f"/v1/tenants/{self.ids.tenant_id}/users/web/{self.ids.user.external_id}"
        sent = await self.call(
            "POST", f"{user}/agents/{self.ids.agent_id}/messages", self.owner,
            {"text": "I see the double charge, refunding it now."},
        )  # fmt: skip
        self.check(sent.status_code == 201, f"the desk reply answered {sent.status_code}")
        self.saw(f"{self.owner} → the user: a reply through the desk")
        ticket = f"/v1/tenants/{self.ids.tenant_id}/tickets/{self.ticket['ticket_id']}"
        done = await self.call("POST", f"{ticket}/resolve", self.owner, {"note": NOTE})
        self.check(done.status_code == 200, f"resolve answered {done.status_code}")
        self.saw(f"resolved with the note {_quote(NOTE)}, back to the AI")
        self.changed = await self.mode_change("ai", "operator", self.changed["state_version"])
        back = await self.say("Thanks! Is it sorted?")
        answer = await self.ai_answer(back)
        self.check(NOTE.rstrip(".") in answer["text"], "the AI did not mention the resolution")

    async def path8_out_of_hours(self) -> None:
        today = datetime.now(UTC).date()
        queue = f"/v1/tenants/{self.ids.tenant_id}/queues/billing"
        closed = {"display_name": "Billing", "timezone": "UTC",
                  "closed_dates": [str(today), str(today + timedelta(days=1))]}  # fmt: skip
        put = await self.call("PUT", queue, "jane", closed)
        self.check(put.status_code == 200, f"the queue settings answered {put.status_code}")
        self.saw("billing closed today and tomorrow (queue settings)")
        try:
            await self.say(BILLING)
            self.changed = await self.mode_change("human", "agent", self.changed["state_version"])
            notice = await self.watch.first(
                self.topics.outbound,
                lambda v: v.get("sender") == "system" and "away" in v.get("text", ""),
                REPLY_S,
                "the notice saying when the team is back (R17)",
            )
            self.saw(f"notice ← {_quote(notice['text'], 200)}")
        finally:
            reopened = await self.call("PUT", queue, "jane", {"display_name": "Billing"})
            self.check(reopened.status_code == 200, "the queue could not be opened again")

    async def run(self) -> list[Outcome]:
        paths: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("the agent hands off when the configured condition appears", self.path1_hands_off),
            ("the handoff message is clear", self.path2_notice),
            ("follow-up messages are recorded but not answered by AI", self.path3_follow_ups),
            (
                "the user returns to AI after the timeout, and can be switched back manually",
                self.path4_back_to_ai,
            ),
            ("a billing problem waits in the billing queue", self.path5_billing_queue),
            ("two teammates claim at once: one owner", self.path6_claim_race),
            ("a resolve with a note: the AI resumes knowing it", self.path7_resolve_with_context),
            ("out of hours the notice says when the team is back", self.path8_out_of_hours),
        ]
        outcomes = []
        failed = False
        for number, (title, path) in enumerate(paths, 1):
            outcome = self._outcome = Outcome(number, title)
            outcomes.append(outcome)
            self.console.print(f"\n[bold]{number}. {title[0].upper()}{title[1:]}[/]")
            if failed:
                outcome.error = "skipped: an earlier path failed"
                self.console.print("   [yellow]SKIPPED[/] (an earlier path failed)")
                continue
            try:
                await path()
                outcome.passed = True
                self.console.print("   [bold green]PASSED[/]")
            except Exception as exc:
                outcome.passed, failed = False, True
                outcome.error = str(exc) or type(exc).__name__
                self.console.print(f"   [bold red]FAILED[/]: {escape(outcome.error)}")
        return outcomes
