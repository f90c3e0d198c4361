"""Per-route request metrics of the operator API, as a plain ASGI middleware.

Labelled by the route's template (`/v1/tenants/{t}/agents/{a}`), never by the raw path,
so user ids stay out of the metrics and the label set stays small. A pure ASGI middleware
(not BaseHTTPMiddleware) so the desk's event stream flows through untouched.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.http import SECURITY_HEADERS

API_REQUESTS = Counter(
    "handoff_api_requests_total", "Operator API requests.", ["method", "route", "status"]
)
API_SECONDS = Histogram(
    "handoff_api_request_seconds",
    "Operator API request latency (streams: their whole life).",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)
# The console loads nothing from elsewhere: scripts, styles and data come from this app.
CONSOLE_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ApiMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        console = scope["path"].startswith("/console")

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", [])) + SECURITY_HEADERS
                if console:
                    headers.append((b"content-security-policy", CONSOLE_CSP))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            route = _route(scope)
            if route not in ("/metrics", "/healthz", "/readyz"):
                API_REQUESTS.labels(scope["method"], route, str(status)).inc()
                API_SECONDS.labels(route).observe(time.perf_counter() - started)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
