"""Who the end user of a page is: a random id in a signed cookie, or `?user=` (dev setup).

The cookie holds `<id>.<signature>` (HMAC-SHA256 of the id); a cookie whose signature does
not verify is ignored and a new id issued. The key is `HANDOFF_WEBCHAT_COOKIE_SECRET`, else
a random one generated once into the data folder (mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

COOKIE = "handoff_user"


def _sign(secret: str, user: str) -> str:
    mac = hmac.new(secret.encode(), user.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue(secret: str, user: str) -> str:
    return f"{user}.{_sign(secret, user)}"


def verify(secret: str, cookie: str | None) -> str | None:
    """The user id of a well-signed cookie, else None."""
    if not cookie or "." not in cookie:
        return None
    user, signature = cookie.rsplit(".", 1)
    return user if user and hmac.compare_digest(signature, _sign(secret, user)) else None


def new_user() -> str:
    return f"visitor-{secrets.token_hex(6)}"


def load_secret(configured: str | None, data_dir: Path) -> str:
    if configured:
        return configured
    path = data_dir / "cookie-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another gateway created it meanwhile: use theirs
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
