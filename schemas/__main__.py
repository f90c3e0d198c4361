"""`python -m schemas [--check] [DIR]`: write (or check) the JSON Schema of every event model.

The files are generated, never edited: CI runs `--check` and fails when they are stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from schemas.events import EVENT_MODELS

DEFAULT_DIR = Path(__file__).parent / "json"


def schema_files() -> dict[str, str]:
    """File name -> JSON text, one per event model."""
    files = {}
    for model in EVENT_MODELS:
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", model.__name__).lower()
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://handoff.dev/schemas/{name}.schema.json"
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if not a.startswith("--")]
    out = Path(paths[0]) if paths else DEFAULT_DIR
    wanted = schema_files()
    if check:
        stale = [
            n
            for n, text in wanted.items()
            if not (out / n).is_file() or (out / n).read_text() != text
        ]
        extra = sorted(p.name for p in out.glob("*.schema.json") if p.name not in wanted)
        for name in stale + extra:
            print(f"stale schema file: {out / name} (run `make schemas`)", file=sys.stderr)
        return 1 if stale or extra else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (out / name).write_text(text)
    print(f"wrote {len(wanted)} schema files to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
