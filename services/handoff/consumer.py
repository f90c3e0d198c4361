"""The consumer of handoff.commands and handoff.operator-commands (an entry point).

Each record's topic says what authority it carries (R22); the use case (service/commands.py)
decides and stores; its outputs go in the processor's Kafka transaction with the offsets.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas import HandoffCommand
from services.common import tracing
from services.common.kafka import Handled, Record, decode
from services.common.settings import Topics
from services.handoff.service.commands import CommandService, Entry


class CommandConsumer:
    """The batch handler of handoff.commands and handoff.operator-commands: one command at a
    time, in order. The topic a record came on is its authority (R22): the agents' topic
    grants `agent`; the operator topic, whose writers the deployment's ACLs restrict to the
    API's and ops tools' principals, grants `operator`."""

    def __init__(self, service: CommandService, topics: Topics) -> None:
        self._service = service
        self._topics = topics
        self._entries = {
            topics.commands: Entry("agent", topics.commands),
            topics.operator_commands: Entry("operator", topics.operator_commands),
        }

    @property
    def topic_names(self) -> list[str]:
        return list(self._entries)

    async def __call__(self, records: Sequence[Record]) -> Handled:
        handled = Handled()
        for record in records:
            command = decode(record, HandoffCommand)
            if not isinstance(command, HandoffCommand):
                handled.dead_letter(self._topics.dead_letter, command)
                continue
            src = f"{record.topic}/{record.partition}/{record.offset}"
            with tracing.processing(record, {"handoff.action": command.action}) as headers:
                result = await self._service.execute(command, src, self._entries[record.topic])
                tracing.note("handoff.outcome", result.code)
            handled.outputs += result.to_outputs(self._topics, headers)
            for counter in result.counters:
                handled.count(counter)
        return handled
