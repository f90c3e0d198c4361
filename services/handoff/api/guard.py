"""What the operator API checks before anything reads a request body (issue 16).

FastAPI reads and parses a body before it runs a route's dependencies, the token check
among them: without this guard, anyone could make the service read and parse any number of
bytes. A pure ASGI middleware, in front of the app: a body larger than the limit is refused
413 from its `Content-Length`, a streamed one (chunked) as soon as it passes the limit, and a
write (`POST`, `PUT`, `PATCH`) of /v1 without a valid token is refused 401 before a byte of
its body is read. A file for a desk reply (`POST /v1/tenants/{t}/desk/files`) has the web
chat's upload limit instead, refused 413 `file_too_large`. The routes check the token again
(auth.current_operator): that stays the one place that decides who the caller is; this only
decides earlier whether to listen.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.handoff.api.auth import JwtVerifier, operator_of
from services.handoff.api.errors import ApiError, error_json

UPLOAD = re.compile(r"^/v1/tenants/[^/]+/desk/files$")

WRITES = frozenset({"POST", "PUT", "PATCH"})


class BodyGuard:
    def __init__(self, app: ASGIApp, max_bytes: int, upload_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = scope["method"] == "POST" and bool(UPLOAD.match(scope["path"]))
        limit = self.upload_max_bytes if upload else self.max_bytes
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._too_large(scope, receive, send, upload)
            return
        if scope["method"] in WRITES and scope["path"].startswith("/v1/"):
            verifier: JwtVerifier = scope["app"].state.api.verifier
            try:
                operator_of(headers.get("authorization"), verifier)
            except ApiError as exc:
                response = error_json(exc.status, exc.code, exc.detail, headers=exc.headers)
                await response(scope, receive, send)
                return
        await self._counted(scope, receive, send, upload)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, upload: bool) -> None:
        """Passes the body on while it stays within the limit; past it, answers 413 itself,
        tells the app the client left, and drops whatever the app still sends."""
        received = 0
        refused = False

        async def counting() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > (self.upload_max_bytes if upload else self.max_bytes):
                    refused = True
                    await self._too_large(scope, receive, send, upload)
                    return {"type": "http.disconnect"}
            return message

        async def sending(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting, sending)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, upload: bool) -> None:
        if upload:  # said as the web chat says it: a person attached the file
            mb = self.upload_max_bytes / (1024 * 1024)
            detail = f"That file is too large: the limit is {mb:g} MB."
            await error_json(413, "file_too_large", detail)(scope, receive, send)
            return
        detail = f"The request body is larger than {self.max_bytes} bytes."
        await error_json(413, "body_too_large", detail)(scope, receive, send)
