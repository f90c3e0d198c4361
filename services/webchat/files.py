"""Uploaded files, stored locally: `<data>/files/<id>/<name>` beside `<id>/meta.json`.

The web chat gateway stores what a page uploads and serves it back at
`{base_url}/files/<id>/<name>`: that URL is what a message's attachment carries. `handoffctl
chat --attach` and `desk reply --attach` store files the same way in the same folder, so the
gateway serves theirs too.
"""

from __future__ import annotations

import json
import mimetypes
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from schemas import Attachment

_ID = re.compile(r"^[0-9a-f]{32}$")


def safe_name(name: str) -> str:
    """A file name that stays inside its folder: no path, no control characters."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(c for c in base if c.isprintable()).strip().lstrip(".")
    return base[:200] or "file"


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
        name = safe_name(name)
        kind = (content_type or "").split(";")[0].strip()
        kind = kind or mimetypes.guess_type(name)[0] or "application/octet-stream"
        file_id = uuid.uuid4().hex
        folder = self.root / file_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        (folder / "meta.json").write_text(json.dumps({"name": name, "content_type": kind}))
        return self._attachment(file_id, name, kind, len(data))

    def save_path(self, path: Path) -> Attachment:
        """Copies a local file into the store (the terminal's --attach)."""
        attachment = self.save(b"", path.name, mimetypes.guess_type(path.name)[0])
        target = self.root / attachment.id / attachment.name
        shutil.copyfile(path, target)
        return attachment.model_copy(update={"size": target.stat().st_size})

    def get(self, file_id: str) -> StoredFile | None:
        if not _ID.match(file_id):
            return None
        try:
            meta = json.loads((self.root / file_id / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        path = self.root / file_id / meta["name"]
        if not path.is_file():
            return None
        size = path.stat().st_size
        return StoredFile(path, self._attachment(file_id, meta["name"], meta["content_type"], size))
