"""The HS256 secret of the operator API: configured, or generated once per install.

`HANDOFF_API_JWT_SECRET` wins. Without it, the service and `make token` share a random
secret kept in a file (default `$XDG_CONFIG_HOME/handoff/jwt-secret`, else
`~/.config/handoff/jwt-secret`), created on first use with mode 0600. Creation is atomic
(written to a private temporary file, then hard-linked into place), so two processes
starting together agree on one secret. Nothing secret is ever a constant in the code.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import structlog

log = structlog.get_logger()

MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


class SecretError(RuntimeError):
    pass


def default_secret_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "handoff" / "jwt-secret"


def _check(secret: str, where: str) -> str:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SecretError(f"the JWT secret from {where} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


def load_or_create(path: Path) -> str:
    """The secret stored at `path`, generating it first if the file does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(tmp, path)  # fails if another process won the race: use theirs
                log.info("jwt_secret_generated", path=str(path))
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("jwt_secret_file_readable_by_others", path=str(path), mode=oct(mode))
    return _check(path.read_text().strip(), str(path))


def resolve_secret(configured: str | None, path: Path | None) -> str:
    """The configured secret, else the per-install one (see the module's doc)."""
    if configured:
        return _check(configured, "HANDOFF_API_JWT_SECRET")
    return load_or_create(path or default_secret_path())
