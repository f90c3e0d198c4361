"""Every error of the operator API is JSON with a stable `code`: {"error": {"code", "detail"}}.

The codes are part of the API (clients branch on them); `detail` is for people. FastAPI's
own errors (validation, unknown path, wrong method) are turned into the same shape here, so
no response of the app is ever HTML or FastAPI's default `{"detail": ...}`.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger()

# A CommandRejected code -> the HTTP status of the mode switch that got it. One place.
REJECTION_STATUS: dict[str, int] = {
    "already_in_mode": 409,
    "handoff_disabled": 409,
    "agent_not_published": 409,
}
DEFAULT_REJECTION_STATUS = 409

_STARLETTE_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class FieldError(BaseModel):
    loc: str = Field(description="Where the bad value is, e.g. `body.handoff.notice_text`.")
    message: str
    type: str | None = Field(
        default=None,
        description="What is wrong, as a stable code (pydantic's error type), e.g. "
        "`string_too_long`, `greater_than_equal`, `missing`: a client words it by this.",
    )
    ctx: dict[str, int | float | str] | None = Field(
        default=None,
        description='The bound that was broken, e.g. `{"max_length": 1000}` (never the '
        "value sent).",
    )


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable error code.")
    detail: str = Field(description="What went wrong, for people.")
    fields: list[FieldError] | None = Field(
        default=None, description="The invalid fields (validation errors only)."
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """Raised by handlers and dependencies; rendered by `api_error_handler`."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


def rejection(code: str, detail: str) -> ApiError:
    """A command's rejection as the mode switch's HTTP error."""
    return ApiError(REJECTION_STATUS.get(code, DEFAULT_REJECTION_STATUS), code, detail)


def error_json(
    status: int,
    code: str,
    detail: str,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, detail=detail, fields=fields))
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _bounds(error: Any) -> dict[str, int | float | str] | None:
    """The plain values of an error's context (`max_length`, `ge`, ...); a validator's
    exception object or anything else is left out."""
    ctx = error.get("ctx") or {}
    plain = {
        k: v for k, v in ctx.items() if isinstance(v, int | float | str) and not isinstance(v, bool)
    }
    return plain or None


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_json(exc.status, exc.code, exc.detail, headers=exc.headers)


async def validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        FieldError(loc=_loc(e["loc"]), message=e["msg"], type=e["type"], ctx=_bounds(e))
        for e in exc.errors()
    ]
    summary = "; ".join(f"{f.loc}: {f.message}" for f in fields[:5])
    return error_json(422, "validation_failed", f"Invalid request. {summary}", fields)


async def http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI could not even read the body: a validation failure
        return error_json(422, "validation_failed", "The body is not valid JSON (UTF-8).")
    code = _STARLETTE_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404:
        detail = "No such resource."
    headers = dict(exc.headers) if exc.headers else None
    return error_json(exc.status_code, code, detail, headers=headers)


async def unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("api_unexpected_error", path=request.url.path, method=request.method)
    return error_json(500, "internal_error", "Something went wrong on our side.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_handler)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry for the error statuses a route can answer."""
    described = {
        401: "No token, a bad signature, an expired or malformed token "
        "(`missing_token`, `invalid_token`, `token_expired`).",
        403: "The operator's role may not do this (`insufficient_role`).",
        404: "Not found, or not in the token's tenant: the two are indistinguishable.",
        409: "Refused in the current state (see the code).",
        413: "The body is larger than allowed (`body_too_large`, `file_too_large`).",
        422: "Invalid path, query, header or body (`validation_failed`, with `fields`).",
        503: "Kafka or Redis did not answer in time (`unavailable`); safe to retry with the "
        "same Idempotency-Key.",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}
