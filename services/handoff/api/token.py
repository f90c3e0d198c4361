"""`python -m services.handoff.api.token --tenant acme --role editor [--sub jane]`: a dev token.

Signs an HS256 token with the secret the handoff service uses (HANDOFF_API_JWT_SECRET, else
the per-install secret file, created if missing) and prints it. `make token` calls this.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid

import jwt

from services.common.logging import configure_logging
from services.handoff.api.auth import ID_RE, MAX_SUB, ROLES
from services.handoff.api.secret import SecretError, default_secret_path, resolve_secret
from services.handoff.settings import HandoffSettings


def make_token(
    secret: str, tenant: str, role: str, sub: str, ttl_seconds: int, now: float | None = None
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": sub,
        "tenant": tenant,
        "role": role,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.handoff.api.token", description=__doc__)
    p.add_argument("--tenant", required=True)
    p.add_argument("--role", choices=ROLES, default="editor")
    p.add_argument("--sub", default=None, help="operator id (default: your user name)")
    p.add_argument("--ttl-hours", type=float, default=12.0)
    args = p.parse_args(argv)
    sub = args.sub or getpass.getuser()
    if not ID_RE.fullmatch(args.tenant):
        print(f"error: {args.tenant!r} is not a tenant id", file=sys.stderr)
        return 2
    if not 1 <= len(sub) <= MAX_SUB:
        print(f"error: --sub must be 1-{MAX_SUB} characters", file=sys.stderr)
        return 2
    configure_logging("WARNING")  # stdout carries the token only: TOKEN=$(make -s token)
    settings = HandoffSettings()
    path = settings.api_jwt_secret_file or default_secret_path()
    new = not settings.api_jwt_secret and not path.exists()
    try:
        secret = resolve_secret(settings.api_jwt_secret, path)
    except SecretError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if new:
        print(f"generated this install's JWT secret in {path} (mode 0600)", file=sys.stderr)
    print(make_token(secret, args.tenant, args.role, sub, int(args.ttl_hours * 3600)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
