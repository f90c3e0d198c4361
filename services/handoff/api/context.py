"""What the API's handlers share, kept on `app.state.api` (see app.py)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from services.common.files import FileStore
from services.handoff.api.auth import JwtVerifier
from services.handoff.api.desk import DeskFeed
from services.handoff.service.commands import CommandService
from services.handoff.service.ticket_actions import TicketActions
from services.handoff.settings import HandoffSettings
from services.handoff.state.canned import CannedReplies
from services.handoff.state.presence import PresenceStore
from services.handoff.state.store import ModeStore


@dataclass(frozen=True)
class ApiContext:
    settings: HandoffSettings
    store: ModeStore
    commands: CommandService
    desk: DeskFeed
    verifier: JwtVerifier
    tickets: TicketActions
    presence: PresenceStore
    canned: CannedReplies
    files: FileStore

    @classmethod
    def of(
        cls,
        settings: HandoffSettings,
        store: ModeStore,
        commands: CommandService,
        desk: DeskFeed,
        verifier: JwtVerifier,
    ) -> ApiContext:
        """The API's parts around the command use case and the desk feed, from settings."""
        return cls(
            settings,
            store,
            commands,
            desk,
            verifier,
            TicketActions(store, commands, settings.minute_ms, settings.teammate_online_ms),
            PresenceStore(
                store,
                int(settings.desk_composing_seconds * 1000),
                int(settings.desk_replied_seconds * 1000),
            ),
            CannedReplies(store, settings.desk_max_canned_replies),
            FileStore(settings.webchat_data_dir.resolve(), settings.webchat_base_url),
        )


def api_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx
