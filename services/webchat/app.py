"""The web chat gateway's HTTP app: the page, its API and the uploaded files.

GET  /                      the chat page (?tenant= &agent= &user= &live_test=1)
GET  /api/session           who this page is: tenant, agent, channel, user, live_test
POST /api/messages          {text, attachments: [file ids], event_id?, conversation_id?}
                            -> a UserMessage on chat.inbound (202, acknowledged by Kafka)
POST /api/files?name=       the file as the raw body -> its Attachment (url served below)
GET  /api/conversation      the page's own conversation: `turns` (the recorded transcript,
                            oldest first) and `answering` (who answers now: ai / waiting with
                            `position` / human with the teammate's `name`)
GET  /api/stream            SSE: `ready`, then `message` events (OutboundMessage JSON) and
                            `answering` (who answers changed: read /api/conversation)
GET  /files/{id}/{name}     an uploaded file

Every /api call takes the page's query (?tenant= &agent= &user= &live_test=); the user is the
signed cookie's unless `?user=` names one (dev setup only, HANDOFF_WEBCHAT_QUERY_USER).
Every response carries the security headers and CSP below; the cookie is `Secure` on https.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from schemas import Attachment, EndUser, InteractionIds, UserMessage, interaction_key
from schemas.events import ExternalId, Id
from services.common.files import FileStore, InvalidUploadError
from services.common.http import SecurityHeaders
from services.webchat import identity
from services.webchat.conversation import ConversationReader
from services.webchat.feed import Inbound, OutboundFeed
from services.webchat.settings import WebchatSettings

STATIC = resources.files("services.webchat").joinpath("static")
ASSETS = {"chat.css": "text/css", "chat.js": "text/javascript", "favicon.svg": "image/svg+xml"}
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}
YEAR = 365 * 24 * 3600
# The page loads its script and style from here only; attachments' images may come from any
# https host (a desk's files), or from here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Gateway:
    settings: WebchatSettings
    feed: OutboundFeed
    inbound: Inbound
    files: FileStore
    secret: str
    conversation: ConversationReader


@dataclass(frozen=True)
class Chat:
    """The interaction a request is about, and whether its user id is new (set the cookie)."""

    ids: InteractionIds
    live_test: bool
    new_cookie: str | None
    secure: bool  # the page is served over https: the cookie says so

    @property
    def ikey(self) -> str:
        return interaction_key(self.ids)

    def remember(self, response: Response) -> None:
        if self.new_cookie:
            response.set_cookie(
                identity.COOKIE,
                self.new_cookie,
                max_age=YEAR,
                httponly=True,
                samesite="lax",
                secure=self.secure,
            )


class SendBody(BaseModel):
    text: str = ""
    attachments: Annotated[list[str], Field(max_length=20)] = []
    event_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    conversation_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None


def _valid(adapter: TypeAdapter[str], value: str, what: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise HTTPException(422, f"invalid {what}: {exc.errors()[0]['msg']}") from exc


_ID = TypeAdapter(Id)
_EXTERNAL = TypeAdapter(ExternalId)


def chat_of(
    request: Request,
    tenant: str | None = None,
    agent: str | None = None,
    user: str | None = None,
    live_test: bool = False,
) -> Chat:
    """The page's interaction: its query, else the defaults; the cookie's user, else a new one."""
    gw: Gateway = request.app.state.gateway
    s = gw.settings
    cookie_user = identity.verify(gw.secret, request.cookies.get(identity.COOKIE))
    named = bool(user and s.webchat_query_user)
    if user and named:
        external = _valid(_EXTERNAL, user, "user")
    else:
        external = cookie_user or identity.new_user()
    ids = InteractionIds(
        tenant_id=_valid(_ID, tenant or s.webchat_tenant, "tenant"),
        agent_id=_valid(_ID, agent or s.webchat_agent, "agent"),
        user=EndUser(channel=s.webchat_channel, external_id=external),
    )
    new_cookie = None if cookie_user or named else identity.issue(gw.secret, external)
    return Chat(ids, live_test, new_cookie, _https(request, s))


def _https(request: Request, s: WebchatSettings) -> bool:
    if s.webchat_base_url.startswith("https://") or request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return s.webchat_trust_proxy and forwarded == "https"


ChatOf = Annotated[Chat, Depends(chat_of)]


def create_app(gw: Gateway) -> FastAPI:
    s = gw.settings
    app = FastAPI(title="handoff-webchat", docs_url=None, redoc_url=None)
    app.add_middleware(SecurityHeaders, csp=CSP)
    app.state.gateway = gw
    api = APIRouter()
    page_html = STATIC.joinpath("index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(c: ChatOf) -> HTMLResponse:
        response = HTMLResponse(page_html, headers={"Cache-Control": "no-cache"})
        c.remember(response)
        return response

    @app.get("/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, "no such file")
        body = STATIC.joinpath(name).read_bytes()
        return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    @api.get("/session")
    async def session(c: ChatOf, response: Response) -> dict[str, Any]:
        c.remember(response)
        return {
            "tenant": c.ids.tenant_id,
            "agent": c.ids.agent_id,
            "channel": c.ids.user.channel,
            "user": c.ids.user.external_id,
            "live_test": c.live_test,
        }

    @api.get("/conversation")
    async def conversation(c: ChatOf, response: Response) -> dict[str, Any]:
        # The identity is the cookie's (or the dev setup's ?user=): never another user's.
        turns, who = await asyncio.gather(
            gw.conversation.turns(c.ikey), gw.conversation.answering(c.ikey)
        )
        c.remember(response)
        response.headers["Cache-Control"] = "no-store"
        return {
            "turns": turns,
            "answering": {"by": who.by, "name": who.name, "position": who.position},
        }

    @api.post("/messages", status_code=202)
    async def send(body: SendBody, c: ChatOf, response: Response) -> dict[str, str]:
        attachments = []
        for file_id in body.attachments:
            stored = gw.files.get(file_id)
            if stored is None:
                raise HTTPException(422, f"no uploaded file {file_id}")
            attachments.append(stored.attachment)
        if not body.text.strip() and not attachments:
            raise HTTPException(422, "a message needs text or a file")
        try:
            message = UserMessage(
                **c.ids.model_dump(),
                event_id=body.event_id or str(uuid.uuid4()),
                conversation_id=body.conversation_id,
                live_test=c.live_test,
                text=body.text,
                attachments=attachments,
                sent_at=datetime.now(UTC),
            )
        except ValidationError as exc:
            raise HTTPException(422, exc.errors()[0]["msg"]) from exc
        await gw.inbound.send(message)
        c.remember(response)
        return {"event_id": message.event_id, "sent_at": message.sent_at.isoformat()}

    @api.post("/files", status_code=201)
    async def upload(request: Request, c: ChatOf, name: str = Query("file")) -> Attachment:
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > s.webchat_max_upload_bytes:
                limit = s.webchat_max_upload_bytes / (1024 * 1024)
                raise HTTPException(413, f"That file is too large: the limit is {limit:g} MB.")
        kind = request.headers.get("content-type")
        try:
            return await asyncio.to_thread(gw.files.save, bytes(data), name, kind)
        except InvalidUploadError as exc:
            raise HTTPException(422, f"invalid upload: {exc}") from exc

    @api.get("/stream")
    async def stream(c: ChatOf) -> StreamingResponse:
        page_feed = gw.feed.open(c.ikey)

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\nevent: ready\ndata: {}\n\n"
                while True:
                    try:
                        item = await asyncio.wait_for(
                            page_feed.queue.get(), s.webchat_heartbeat_seconds
                        )
                    except TimeoutError:
                        if page_feed.dropped:
                            return
                        yield ": ping\n\n"
                        continue
                    if item is None:
                        return
                    if isinstance(item, str):
                        yield f"event: {item}\ndata: {{}}\n\n"
                        continue
                    yield f"id: {item.event_id}\nevent: message\ndata: {item.model_dump_json()}\n\n"
            finally:
                gw.feed.close(page_feed)

        response = StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        c.remember(response)
        return response

    @app.get("/files/{file_id}/{name}", include_in_schema=False)
    async def download(file_id: str, name: str) -> FileResponse:
        stored = gw.files.get(file_id)
        if stored is None or stored.attachment.name != name:
            raise HTTPException(404, "no such file")
        kind = stored.attachment.content_type
        disposition = "inline" if kind in INLINE_TYPES else "attachment"
        return FileResponse(
            stored.path,
            media_type=kind,
            filename=stored.attachment.name,
            content_disposition_type=disposition,
        )

    app.include_router(api, prefix="/api")
    return app
