"""Who is calling: `Authorization: Bearer <JWT>` with claims `sub`, `tenant`, `role`.

HS256 with the configured (or per-install) secret; RS256 as well when a public key is
configured. The key is picked by the token header's `alg`, and each key verifies only its
own algorithm, so an RS256 public key can never be used as an HMAC secret. `exp` is
required. A token of another tenant gets the same 404 as a missing resource: existence
never leaks across tenants (see `tenant_scope`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from schemas.events import ID_PATTERN
from services.handoff.api.errors import ApiError

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
WRITE_ROLES: frozenset[str] = frozenset({"editor", "admin"})
MAX_EXP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last time a datetime can hold
MAX_SUB = 200  # `operator:{sub}` is an event's actor, at most 256 characters
ID_RE = re.compile(ID_PATTERN)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="handoff"'}


@dataclass(frozen=True)
class Operator:
    sub: str
    tenant: str
    role: Role
    token_id: str | None  # the token's `jti`, when it has one
    expires_at: float  # `exp`, seconds since the epoch

    @property
    def actor(self) -> str:
        return f"operator:{self.sub}"

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES


def unauthorized(code: str, detail: str) -> ApiError:
    return ApiError(401, code, detail, headers=_CHALLENGE)


def read_public_key(value: str | None) -> str | None:
    """A PEM public key given inline, or the path of a file holding one."""
    if not value:
        return None
    if value.lstrip().startswith("-----BEGIN"):
        return value
    return Path(value).read_text()


class JwtVerifier:
    def __init__(self, secret: str, public_key: str | None = None, leeway: int = 30) -> None:
        self._keys: dict[str, Any] = {"HS256": secret}
        if public_key:
            rsa = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
            self._keys["RS256"] = rsa.prepare_key(public_key)  # fails fast on a bad key
        self._leeway = leeway

    @property
    def algorithms(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, token: str) -> Operator:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise unauthorized("invalid_token", f"Malformed token: {exc}") from exc
        key = self._keys.get(alg) if isinstance(alg, str) else None
        if key is None or not isinstance(alg, str):
            raise unauthorized("invalid_token", f"Tokens signed with {alg!r} are not accepted.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                leeway=self._leeway,
                options={"require": ["exp", "sub", "tenant", "role"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("token_expired", "The token has expired.") from exc
        except jwt.InvalidTokenError as exc:
            raise unauthorized("invalid_token", f"Invalid token: {exc}") from exc
        return _operator(claims)


def _operator(claims: dict[str, Any]) -> Operator:
    sub, tenant, role = claims.get("sub"), claims.get("tenant"), claims.get("role")
    if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB or not sub.isprintable():
        raise unauthorized("invalid_token", f"Claim `sub` must be 1-{MAX_SUB} printable chars.")
    if not isinstance(tenant, str) or not ID_RE.fullmatch(tenant):
        raise unauthorized("invalid_token", "Claim `tenant` is not a tenant id.")
    if role not in ROLES:
        raise unauthorized("invalid_token", f"Claim `role` must be one of {', '.join(ROLES)}.")
    exp = claims["exp"]  # pyjwt checked it is a number, and not in the past
    if not isinstance(exp, int | float) or not 0 < exp <= MAX_EXP:
        raise unauthorized("invalid_token", "Claim `exp` is not a time this API can represent.")
    jti = claims.get("jti")
    return Operator(
        sub=sub,
        tenant=tenant,
        role=role,
        token_id=str(jti)[:256] if jti is not None else None,
        expires_at=float(exp),
    )


bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT with claims `sub` (operator id), `tenant` and `role` "
    "(`viewer`, `editor` or `admin`), and `exp`. HS256; RS256 when a public key is configured.",
)


def operator_of(authorization: str | None, verifier: JwtVerifier) -> Operator:
    """The operator an `Authorization` header names, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("missing_token", "Send `Authorization: Bearer <token>`.")
    return verifier.verify(token.strip())


async def current_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Operator:
    # `bearer` documents the scheme in the OpenAPI document; the header is read here.
    del credentials
    verifier: JwtVerifier = request.app.state.api.verifier
    operator = operator_of(request.headers.get("authorization"), verifier)
    request.state.operator = operator  # for the access log
    return operator


NotFound = Callable[[dict[str, Any]], ApiError]


def tenant_scope(not_found: NotFound, write: bool = False) -> Callable[..., Awaitable[Operator]]:
    """A dependency: the operator, if the path's tenant `t` is theirs (and, for `write`, if
    their role may change things). Another tenant gets `not_found(path params)`: the very
    response a missing resource of their own tenant gets."""

    async def scoped(
        request: Request, operator: Annotated[Operator, Depends(current_operator)]
    ) -> Operator:
        if request.path_params.get("t") != operator.tenant:
            raise not_found(request.path_params)
        if write and not operator.can_write:
            raise ApiError(
                403,
                "insufficient_role",
                f"Role {operator.role!r} may only read; this needs editor or admin.",
            )
        return operator

    return scoped
