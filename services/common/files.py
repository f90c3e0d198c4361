"""Uploaded files, stored locally: `<data>/files/<id>/content` beside `<id>/meta.json`.

The web chat gateway stores what a page uploads and serves it back at
`{base_url}/files/<id>/<name>`: that URL is what a message's attachment carries. `handoffctl
chat --attach`, `desk reply --attach` and the desk's reply box (the operator API) store files
the same way in the same folder, so the gateway serves theirs too: that is why this module is
shared, not the web chat's.

The user's file name lives only in the metadata, never on the file system: a file named
`meta.json` (or `../x`, or 200 emoji, longer than a file system allows) is just a name. An
upload is checked whole (name, content type, the attachment it makes) before anything is
written, and a write that fails removes its folder: a failed upload leaves nothing behind.
"""

from __future__ import annotations

import json
import mimetypes
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import ValidationError

from schemas import Attachment
from services.common.settings import CommonSettings

_ID = re.compile(r"^[0-9a-f]{32}$")
# RFC 6838 type/subtype, at most 128 characters (Attachment.content_type's limit).
_MIME = re.compile(r"^[A-Za-z0-9][\w!#$&^.+-]{0,62}/[A-Za-z0-9][\w!#$&^.+-]{0,62}$", re.ASCII)
MAX_NAME = 120  # characters: its percent-encoded URL stays well within Attachment.url's 2048
CONTENT = "content"
META = "meta.json"


class InvalidUploadError(ValueError):
    """An upload the store refuses; its message says why (the gateway answers 422)."""


def safe_name(name: str) -> str:
    """A display name: no path, no control characters, at most MAX_NAME characters (the
    extension kept)."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(c for c in base if c.isprintable()).strip().lstrip(".")
    if len(base) > MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        keep = f"{dot}{ext}" if stem and len(ext) <= 16 else ""
        base = base[: MAX_NAME - len(keep)].rstrip() + keep
    return base or "file"


def content_type_of(declared: str | None, name: str) -> str:
    kind = (declared or "").split(";")[0].strip()
    if not kind:
        return mimetypes.guess_type(name)[0] or "application/octet-stream"
    if not _MIME.fullmatch(kind):
        raise InvalidUploadError("the content type must be a media type like image/png")
    return kind.lower()


@dataclass(frozen=True)
class StoredFile:
    path: Path
    attachment: Attachment


class FileStore:
    def __init__(self, data_dir: Path, base_url: str) -> None:
        self.root = data_dir / "files"
        self.base_url = base_url.rstrip("/")

    def _attachment(self, file_id: str, name: str, content_type: str, size: int) -> Attachment:
        return Attachment(
            id=file_id,
            name=name,
            content_type=content_type,
            size=size,
            url=f"{self.base_url}/files/{file_id}/{quote(name)}",
        )

    def save(self, data: bytes, name: str, content_type: str | None) -> Attachment:
        return self._store(name, content_type, lambda target: target.write_bytes(data))

    def save_path(self, path: Path) -> Attachment:
        """Copies a local file into the store (the terminal's --attach)."""
        kind = mimetypes.guess_type(path.name)[0]
        return self._store(path.name, kind, lambda target: shutil.copyfile(path, target))

    def _store(
        self, name: str, content_type: str | None, write: Callable[[Path], object]
    ) -> Attachment:
        name = safe_name(name)
        kind = content_type_of(content_type, name)
        file_id = uuid.uuid4().hex
        try:
            self._attachment(file_id, name, kind, 0)  # refused here, before any write
        except ValidationError as exc:
            raise InvalidUploadError(exc.errors()[0]["msg"]) from exc
        folder = self.root / file_id
        folder.mkdir(parents=True)
        try:
            write(folder / CONTENT)
            (folder / META).write_text(json.dumps({"name": name, "content_type": kind}))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._attachment(file_id, name, kind, (folder / CONTENT).stat().st_size)

    def get(self, file_id: str) -> StoredFile | None:
        if not _ID.match(file_id):
            return None
        folder = self.root / file_id
        try:
            meta = json.loads((folder / META).read_text())
            size = (folder / CONTENT).stat().st_size
        except (OSError, ValueError):
            return None
        attachment = self._attachment(file_id, meta["name"], meta["content_type"], size)
        return StoredFile(folder / CONTENT, attachment)


WEBCHAT_PORT = 8084


class FileSettings(CommonSettings):
    """Where uploaded files live and the URL they are served at: the web chat gateway serves
    them, and the operator API (a teammate's attachment) and handoffctl store them there too,
    so every service of one install reads the same `HANDOFF_WEBCHAT_*` values."""

    # Uploaded files (files/<id>/<name>) and the cookie secret live here.
    webchat_data_dir: Path = Path(".run/webchat")
    # The base URL of the links to uploaded files that messages carry; default
    # http://{http_host}:{the gateway's port}. Set it when the gateway sits behind a proxy,
    # and for the other services when the gateway is not on this host's port 8084.
    webchat_public_url: str | None = None
    webchat_max_upload_bytes: int = 10 * 1024 * 1024

    @property
    def webchat_port(self) -> int:
        """The gateway's port, as far as this service knows (only the gateway sets it)."""
        return WEBCHAT_PORT

    @property
    def webchat_base_url(self) -> str:
        if self.webchat_public_url:
            return self.webchat_public_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
        return f"http://{host}:{self.webchat_port}"
