"""The layers, checked on the source: plug-ins speak to Handoff over topics only, and the pure
domain modules do no I/O.

Every import counts, also one inside a function or under `if TYPE_CHECKING:`, and imports
are followed through the repository's own modules (a domain module importing a module that
imports redis does I/O as much as one importing redis). Paths are relative to the repo root.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The pure domain modules: they import no I/O library, nor any module of the repository that
# does (transitively). Every module of services/handoff/domain/ is one.
DOMAIN_MODULES = (
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "services/handoff/domain").glob("*.py")),
    "services/router/domain.py",
    "services/handoff/analytics/domain.py",
    "services/agent/domain.py",
)
IO_LIBRARIES = ("redis", "aiokafka", "confluent_kafka", "httpx", "fastapi", "starlette")

# Layers below the services: the contract imports nothing of the project, the shared code no
# service (a service may import them, never the other way round).
LOWER_LAYERS = {
    "schemas": ("services", "devstack"),
    "services/common": (
        "services.handoff", "services.router", "services.timeout", "services.agent",
        "services.webchat", "services.cli", "services.demo",
    ),
    # The state's owner shares nothing with the channel, the agent or the router it serves.
    "services/handoff": (
        "services.router", "services.timeout", "services.agent", "services.webchat",
        "services.cli", "services.demo",
    ),
}  # fmt: skip

# Parts that plug into Handoff over its topics (and, for the web chat, reads of the keys it
# shows): none of their modules imports the handoff service or the router, even transitively.
PLUG_INS = ("services/agent", "services/webchat")
SERVICES_OF_HANDOFF = ("services.handoff", "services.router")


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """The dotted names `source` (the module `module`) imports anywhere in its body: each
    `import a.b`, each `from a import b` as `a` and `a.b` (b may be a module), relative
    imports resolved."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def source_of(module: str, root: Path = ROOT) -> Path | None:
    """The repository's file of `module`, or None (a library, or a name that is no module)."""
    path = root.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def reached(start: str, root: Path = ROOT) -> dict[str, list[str]]:
    """Every module importing `start` runs (within the repo, and the libraries it names),
    each with the chain of imports that reaches it."""
    chains: dict[str, list[str]] = {start: [start]}
    todo = [start]
    while todo:
        module = todo.pop()
        path = source_of(module, root)
        if path is None:
            continue
        names = imports_of(path.read_text(), module, path.name == "__init__.py")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for name in sorted(names):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                each = ".".join(parts[:i])
                if each not in chains and (source_of(each, root) or i == len(parts)):
                    chains[each] = [*chains[module], each]
                    todo.append(each)
    return chains


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def plug_in_modules() -> Iterator[str]:
    for folder in PLUG_INS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield module_of(path)


@pytest.mark.parametrize("module", list(plug_in_modules()))
def test_plug_ins_do_not_import_the_handoff_service_or_the_router(module: str) -> None:
    bad = {m: chain for m, chain in reached(module).items() if within(m, SERVICES_OF_HANDOFF)}
    assert not bad, "\n".join(" -> ".join(chain) for chain in bad.values())


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        (module_of(path), forbidden)
        for folder, forbidden in LOWER_LAYERS.items()
        for path in sorted((ROOT / folder).rglob("*.py"))
    ],
)
def test_lower_layers_import_no_layer_above(module: str, forbidden: tuple[str, ...]) -> None:
    bad = {m: chain for m, chain in reached(module).items() if within(m, forbidden)}
    assert not bad, "\n".join(" -> ".join(chain) for chain in bad.values())


@pytest.mark.parametrize("path", DOMAIN_MODULES)
def test_domain_modules_do_no_io(path: str) -> None:
    assert (ROOT / path).is_file(), f"{path} is listed but missing"
    chains = reached(module_of(ROOT / path))
    bad = {m: chain for m, chain in chains.items() if within(m, IO_LIBRARIES)}
    assert not bad, "\n".join(" -> ".join(chain) for chain in bad.values())


def test_imports_are_found_inside_functions_and_relative_ones_resolved() -> None:
    source = (
        "import json\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from services.handoff.state.store import ModeStore\n"
        "def later():\n    import redis.asyncio\n    from . import store\n"
        "class A:\n    def m(self):\n        from ..common import kafka\n"
    )
    found = imports_of(source, "services.agent.worker")
    assert {"json", "services.handoff.state.store", "redis.asyncio"} <= found
    assert {"services.agent.store", "services.common.kafka"} <= found


def test_the_walk_follows_the_repositorys_modules_to_a_library(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "domain.py").write_text("def f():\n    from pkg import helper\n")
    (tmp_path / "pkg" / "helper.py").write_text("import redis.asyncio as aioredis\n")
    chains = reached("pkg.domain", tmp_path)
    assert chains["redis.asyncio"] == ["pkg.domain", "pkg.helper", "redis.asyncio"]
    assert "pkg.domain" not in reached("pkg.helper", tmp_path)
