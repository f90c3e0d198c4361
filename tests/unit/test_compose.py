"""docker-compose.yml and the Dockerfile checked against the code they deploy (no Docker needed).

pydantic-settings ignores unknown variables (extra="ignore"), so a misspelt HANDOFF_* in the
compose file would be dropped silently and the service would run on a default; these tests
are what notices it. One test per property, each failing with the mismatch spelled out.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic_settings import BaseSettings

from services.agent.settings import AgentSettings
from services.common.settings import CommonSettings
from services.handoff.settings import HandoffSettings
from services.router.settings import RouterSettings
from services.timeout.settings import TimeoutSettings
from services.webchat.settings import WebchatSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_PREFIX = "HANDOFF_"

# The module a service runs -> the settings class that module reads its environment into.
SETTINGS_OF_MODULE: dict[str, type[BaseSettings]] = {
    "services.router": RouterSettings,
    "services.handoff": HandoffSettings,
    "services.timeout": TimeoutSettings,
    "services.common.topics": CommonSettings,
    "services.agent": AgentSettings,
    "services.webchat": WebchatSettings,
}
# The Python file whose code instantiates that settings class.
MAIN_FILE_OF_MODULE = {
    "services.router": "services/router/__main__.py",
    "services.handoff": "services/handoff/__main__.py",
    "services.timeout": "services/timeout/__main__.py",
    "services.common.topics": "services/common/topics.py",
    "services.agent": "services/agent/__main__.py",
    "services.webchat": "services/webchat/__main__.py",
}
KAFKA = "kafka"
REDIS = "redis"
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
READYZ_URL = re.compile(r"https?://(?P<host>[^/:'\"\s]+):(?P<port>\d+)/readyz\b")
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<op>:?[-?])(?P<default>[^}]*)\}")
# A required value (${VAR:?message}) is a deployment secret: checked with a stand-in.
REQUIRED_STAND_IN = "a-deployment-secret-of-at-least-32-bytes"


# --- reading the files ---------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no `services` mapping"
    return data


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def ours() -> dict[str, dict[str, Any]]:
    """The services built from our Dockerfile, i.e. the ones running our code."""
    return {name: svc for name, svc in SERVICES.items() if "build" in svc}


def argv(value: Any) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    assert isinstance(value, list), f"expected a string or a list, got {value!r}"
    return [str(v) for v in value]


def module_of(name: str) -> str:
    svc = SERVICES[name]
    assert "command" in svc, f"service {name!r} runs our image but sets no `command`"
    cmd = argv(svc["command"])
    assert len(cmd) == 3 and cmd[0] in {"python", "python3"} and cmd[1] == "-m", (
        f"service {name!r}: command {cmd} is not `python -m <module>`"
    )
    return cmd[2]


def settings_class(name: str) -> type[BaseSettings]:
    module = module_of(name)
    assert module in SETTINGS_OF_MODULE, (
        f"service {name!r} runs {module!r}, which has no settings class in SETTINGS_OF_MODULE "
        f"(known: {sorted(SETTINGS_OF_MODULE)}); add it so its environment gets checked"
    )
    return SETTINGS_OF_MODULE[module]


def resolve(service: str, key: str, value: Any) -> str | None:
    """The value the container sees: a literal, or the default of `${VAR:-default}`."""
    if value is None:
        return None  # `KEY:` with no value passes the host's variable through
    assert not isinstance(value, bool), (
        f"service {service!r}: {key}={value!r} is a YAML boolean; quote it"
    )
    text = str(value)
    if "$" not in text:
        return text
    match = INTERPOLATION.fullmatch(text)
    assert match, (
        f"service {service!r}: {key}={text!r} uses interpolation this test cannot resolve; "
        "use a literal, ${VAR:-default} or ${VAR:?message}"
    )
    return REQUIRED_STAND_IN if match["op"].endswith("?") else match["default"]


def environment(name: str) -> dict[str, str | None]:
    svc = SERVICES[name]
    assert "env_file" not in svc, (
        f"service {name!r} uses env_file; its variables would escape these checks"
    )
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        pairs = [item.split("=", 1) if "=" in item else [item, None] for item in raw]
        raw = dict(pairs)
    assert isinstance(raw, dict), f"service {name!r}: `environment` is neither a map nor a list"
    return {str(k): resolve(name, str(k), v) for k, v in raw.items()}


def handoff_env(name: str) -> dict[str, str | None]:
    return {k: v for k, v in environment(name).items() if k.upper().startswith(ENV_PREFIX)}


def field_of(env_var: str) -> str:
    return env_var[len(ENV_PREFIX) :].lower()


def http_port_field(cls: type[BaseSettings]) -> str | None:
    fields = [f for f in cls.model_fields if f.endswith("_http_port")]
    assert len(fields) <= 1, f"{cls.__name__} has several HTTP port fields: {fields}"
    return fields[0] if fields else None


def settings_for(name: str, monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """The service's settings, built from exactly the environment the compose file gives it."""
    cls = settings_class(name)
    for var in list(os.environ):
        if var.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(var)
    for var, value in handoff_env(name).items():
        if value is not None:
            monkeypatch.setenv(var, value)
    return cls()


def http_services() -> Iterator[tuple[str, str]]:
    """(service, port field) for every service of ours that serves HTTP."""
    for name in ours():
        field = http_port_field(settings_class(name))
        if field is not None:
            yield name, field


def one_shot(name: str) -> bool:
    """Runs once: restart "no", and the services depending on it wait for it to complete."""
    if SERVICES[name].get("restart", "no") != "no":
        return False
    conditions = [
        deps[name].get("condition")
        for deps in (depends_on(other) for other in SERVICES)
        if name in deps
    ]
    return bool(conditions) and all(c == "service_completed_successfully" for c in conditions)


def depends_on(name: str) -> dict[str, dict[str, Any]]:
    deps = SERVICES[name].get("depends_on") or {}
    if isinstance(deps, list):
        return {d: {"condition": "service_started"} for d in deps}
    return {d: (spec or {"condition": "service_started"}) for d, spec in deps.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends with a line continuation"
    out = []
    for entry in logical:
        word, _, rest = entry.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def mounts(name: str) -> list[tuple[str | None, str]]:
    """(source, target) of each volume of a service, short or long syntax."""
    result: list[tuple[str | None, str]] = []
    for vol in SERVICES[name].get("volumes") or []:
        if isinstance(vol, dict):
            result.append((vol.get("source"), vol["target"]))
        else:
            parts = str(vol).split(":")
            result.append((parts[0], parts[1]) if len(parts) > 1 else (None, parts[0]))
    return result


def image_tag(image: str) -> str | None:
    if "@sha256:" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def kafka_env() -> dict[str, str]:
    return {k: str(v) for k, v in environment(KAFKA).items() if v is not None}


# --- the Dockerfile ------------------------------------------------------------------------


def test_dockerfile_installs_the_project_on_a_supported_python() -> None:
    instructions = dockerfile_instructions()
    froms = [args for word, args in instructions if word == "FROM"]
    assert froms, "the Dockerfile has no FROM"
    base = froms[-1].split()[0]
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim(?:-\w+)?", base)
    assert match, f"the final stage is FROM {base!r}, expected python:<x.y>-slim"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(match[1] + ".0"), (
        f"the image's Python {match[1]} does not satisfy requires-python {requires!r}"
    )
    runs = [args for word, args in instructions if word == "RUN"]
    assert any(re.search(r"\bpip install --no-cache-dir \.(\s|$)", r) for r in runs), (
        f"no RUN installs the project with `pip install --no-cache-dir .`; RUN lines: {runs}"
    )


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [args for word, args in dockerfile_instructions() if word == "USER"]
    assert users, "the Dockerfile has no USER: the services would run as root"
    user = users[-1].split(":", 1)[0]
    assert user not in {"root", "0"}, f"the last USER is {users[-1]!r}, which is root"


def test_dockerfile_cmd_and_entrypoint_leave_the_command_to_compose() -> None:
    instructions = dockerfile_instructions()
    entrypoints = [args for word, args in instructions if word == "ENTRYPOINT"]
    assert not entrypoints, (
        f"the Dockerfile sets ENTRYPOINT {entrypoints}: compose's `python -m ...` commands "
        "would become its arguments"
    )
    cmds = [args for word, args in instructions if word == "CMD"]
    assert not cmds, f"the Dockerfile sets CMD {cmds}; each compose service sets its command"
    for name, svc in ours().items():
        assert "entrypoint" not in svc, f"service {name!r} overrides the entrypoint"
        assert "command" in svc, f"service {name!r} has no `command` and the image has no CMD"


def test_dockerfile_copies_every_package_the_commands_import() -> None:
    copied: set[str] = set()
    for word, args in dockerfile_instructions():
        if word in {"COPY", "ADD"}:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            copied.update(Path(s).parts[0] for s in sources if s not in {".", "./"})
            if any(s in {".", "./"} for s in sources):
                copied.add("*")
    assert "pyproject.toml" in copied or "*" in copied, "the Dockerfile never copies pyproject.toml"

    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    needed = {module_of(name).split(".")[0] for name in ours()}
    seen: set[str] = set()
    while needed - seen:
        package = (needed - seen).pop()
        seen.add(package)
        for source in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                needed.update(n.split(".")[0] for n in names if n.split(".")[0] in local)
    missing = sorted(seen - copied) if "*" not in copied else []
    assert not missing, (
        f"the services import the local packages {missing}, which the Dockerfile never copies"
    )


# --- commands and settings -----------------------------------------------------------------


def test_our_services_build_from_the_dockerfile() -> None:
    assert ours(), "no service in docker-compose.yml is built from the Dockerfile"
    for name, svc in ours().items():
        build = svc["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        path = (COMPOSE_FILE.parent / context / dockerfile).resolve()
        assert path == DOCKERFILE.resolve(), (
            f"service {name!r} builds {path}, expected {DOCKERFILE}"
        )
        assert "latest" not in str(svc.get("image", "")), f"service {name!r} tags its image latest"


def test_commands_run_modules_that_exist() -> None:
    for name in ours():
        module = module_of(name)
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"service {name!r} runs {module!r}, which does not exist"
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            main = importlib.util.find_spec(module + ".__main__")
            assert main is not None, (
                f"service {name!r} runs the package {module!r}, which has no __main__.py"
            )
        settings_class(name)


def test_modules_read_the_settings_class_they_are_checked_against() -> None:
    for module, cls in SETTINGS_OF_MODULE.items():
        source = ROOT / MAIN_FILE_OF_MODULE[module]
        calls = {
            node.func.id
            for node in ast.walk(ast.parse(source.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert cls.__name__ in calls, (
            f"{source.relative_to(ROOT)} never calls {cls.__name__}(); "
            f"SETTINGS_OF_MODULE[{module!r}] is stale"
        )
        assert cls.model_config.get("env_prefix") == ENV_PREFIX, (
            f"{cls.__name__} reads env prefix {cls.model_config.get('env_prefix')!r}"
        )


def test_handoff_env_vars_are_fields_of_the_services_settings() -> None:
    unknown = []
    for name in ours():
        cls = settings_class(name)
        for var in handoff_env(name):
            if field_of(var) not in cls.model_fields:
                unknown.append(f"{name}: {var} (no field {field_of(var)!r} in {cls.__name__})")
    assert not unknown, "HANDOFF_* variables the service would silently ignore:\n" + "\n".join(
        unknown
    )


def test_handoff_env_values_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ours():
        with monkeypatch.context() as patch:
            try:
                settings_for(name, patch)
            except Exception as exc:  # a ValidationError names the field and the bad value
                pytest.fail(f"service {name!r}: its HANDOFF_* values do not validate: {exc}")


def test_http_services_listen_on_all_interfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _ in http_services():
        with monkeypatch.context() as patch:
            host = settings_for(name, patch).http_host  # type: ignore[attr-defined]
        assert host in {"0.0.0.0", "::"}, (
            f"service {name!r} binds its HTTP server to {host!r}: unreachable from outside "
            "its container; set HANDOFF_HTTP_HOST=0.0.0.0"
        )


def test_instance_ids_are_fixed_per_service() -> None:
    for name in ours():
        if one_shot(name):
            continue
        value = handoff_env(name).get("HANDOFF_INSTANCE_ID")
        assert value, (
            f"service {name!r} sets no HANDOFF_INSTANCE_ID: it defaults to the container's "
            "hostname, which changes when the container is recreated (a new transactional id)"
        )
        replicas = (SERVICES[name].get("deploy") or {}).get("replicas", 1)
        assert SERVICES[name].get("scale", 1) == 1 and replicas == 1, (
            f"service {name!r} runs several replicas with one instance id: they would fence "
            "each other's transactions"
        )


# --- health, ports, dependencies -----------------------------------------------------------


def test_every_service_has_a_healthcheck() -> None:
    for name, svc in SERVICES.items():
        if name in ours() and one_shot(name) and http_port_field(settings_class(name)) is None:
            continue  # nothing to probe; dependents wait for it to complete instead
        check = svc.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), (
            f"service {name!r} has no healthcheck"
        )


def test_healthchecks_probe_readyz_on_the_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, field in http_services():
        with monkeypatch.context() as patch:
            port = getattr(settings_for(name, patch), field)
        test = argv(SERVICES[name]["healthcheck"]["test"])
        urls = READYZ_URL.findall(" ".join(test))
        assert len(urls) == 1, f"service {name!r}: healthcheck {test} probes no single /readyz URL"
        host, probed = urls[0]
        assert host in {"127.0.0.1", "localhost"}, f"service {name!r}: healthcheck probes {host}"
        assert int(probed) == port, (
            f"service {name!r}: healthcheck probes port {probed}, but {field} is {port}"
        )
        is_python = len(test) == 4 and test[1] in {"python", "python3"} and test[2] == "-c"
        assert test[0] == "CMD" and is_python, (
            f"service {name!r}: healthcheck {test} is not `CMD python -c ...` (slim has no curl)"
        )
        compile(test[3], f"<healthcheck of {name}>", "exec")


def test_published_ports_map_to_the_http_port(monkeypatch: pytest.MonkeyPatch) -> None:
    published = 0
    for name, field in http_services():
        with monkeypatch.context() as patch:
            port = getattr(settings_for(name, patch), field)
        for entry in SERVICES[name].get("ports") or []:
            if isinstance(entry, dict):
                target = str(entry["target"])
            else:
                target = str(entry).rsplit(":", 1)[-1].split("/", 1)[0]
            assert target.isdigit(), f"service {name!r}: cannot read the port {entry!r}"
            assert int(target) == port, (
                f"service {name!r} publishes container port {target}, but {field} is {port}"
            )
            published += 1
    assert published, "no service publishes its HTTP port (handoff is meant to publish it)"


def test_depends_on_references_existing_services() -> None:
    for name in SERVICES:
        for dep, spec in depends_on(name).items():
            assert dep in SERVICES, f"service {name!r} depends on {dep!r}, which does not exist"
            condition = spec.get("condition", "service_started")
            assert condition in DEPENDS_CONDITIONS, f"{name!r} -> {dep!r}: bad {condition=}"
            if condition == "service_healthy":
                assert SERVICES[dep].get("healthcheck"), (
                    f"service {name!r} waits for {dep!r} to be healthy, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert SERVICES[dep].get("restart", "no") == "no", (
                    f"service {name!r} waits for {dep!r} to complete, but {dep!r} restarts"
                )


def test_our_services_wait_for_kafka_redis_and_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    creators = [n for n in ours() if module_of(n) == "services.common.topics"]
    assert len(creators) == 1, f"expected one service creating the topics, found {creators}"
    for name in ours():
        with monkeypatch.context() as patch:
            settings: Any = settings_for(name, patch)
        kafka_host = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[0]
        redis_host = re.sub(r"^\w+://(?:[^@]*@)?", "", settings.redis_url).split(":")[0]
        wanted = {kafka_host: "service_healthy"}
        if name not in creators:
            wanted[redis_host] = "service_healthy"
            wanted[creators[0]] = "service_completed_successfully"
        deps = depends_on(name)
        for dep, condition in wanted.items():
            assert dep in SERVICES, f"service {name!r} connects to {dep!r}, not a compose service"
            actual = deps.get(dep, {}).get("condition")
            assert actual == condition, (
                f"service {name!r} must wait for {dep!r} with {condition}, has {actual}"
            )


def test_restart_policies() -> None:
    for name in SERVICES:
        restart = SERVICES[name].get("restart")
        if name in ours() and module_of(name) == "services.common.topics":
            hint = ' (an unquoted YAML no; write "no")' if restart is False else ""
            assert restart == "no", f"one-shot service {name!r} has restart {restart!r}{hint}"
        else:
            assert restart == "unless-stopped", f"service {name!r} has restart {restart!r}"


# --- Kafka and Redis -----------------------------------------------------------------------


def test_kafka_and_redis_images_are_pinned() -> None:
    for name in (KAFKA, REDIS):
        image = SERVICES[name].get("image", "")
        tag = image_tag(image)
        assert tag and tag != "latest", f"service {name!r} image {image!r} is not pinned"


def test_redis_persists_with_appendonly_everysec() -> None:
    cmd = argv(SERVICES[REDIS].get("command", []))
    options = dict(zip(cmd[1::2], cmd[2::2], strict=False)) if cmd[:1] == ["redis-server"] else {}
    assert options.get("--appendonly") == "yes", f"redis command {cmd} lacks --appendonly yes"
    assert options.get("--appendfsync") == "everysec", (
        f"redis command {cmd} lacks --appendfsync everysec"
    )


def test_kafka_is_a_single_node_kraft_broker() -> None:
    env = kafka_env()
    assert set(env.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"}, (
        f"KAFKA_PROCESS_ROLES is {env.get('KAFKA_PROCESS_ROLES')!r}"
    )
    required = {
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    }
    assert required <= env.keys(), f"kafka does not set {sorted(required - env.keys())}"
    wrong = {
        k: v
        for k, v in env.items()
        if (k.endswith("_REPLICATION_FACTOR") or k.endswith("_MIN_ISR")) and v != "1"
    }
    assert not wrong, f"a single broker needs replication factors and min ISR of 1: {wrong}"
    node = env.get("KAFKA_NODE_ID")
    voters = env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")
    assert node and voters.startswith(f"{node}@"), (
        f"KAFKA_NODE_ID {node!r} is not the quorum voter in {voters!r}"
    )
    controller = env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
    assert controller and f"{controller}://" in env.get("KAFKA_LISTENERS", ""), (
        f"the controller listener {controller!r} is not in KAFKA_LISTENERS"
    )


def test_kafka_advertises_the_bootstrap_address(monkeypatch: pytest.MonkeyPatch) -> None:
    advertised = {
        url.split("://", 1)[1]
        for url in kafka_env().get("KAFKA_ADVERTISED_LISTENERS", "").split(",")
        if "://" in url
    }
    for name in ours():
        with monkeypatch.context() as patch:
            bootstrap = settings_for(name, patch).kafka_bootstrap  # type: ignore[attr-defined]
        for address in bootstrap.split(","):
            assert address in advertised, (
                f"service {name!r} bootstraps from {address}, which kafka does not advertise "
                f"({sorted(advertised)})"
            )


def test_kafka_and_redis_keep_their_data_on_named_volumes() -> None:
    declared = set((COMPOSE.get("volumes") or {}).keys())
    data_dirs = {
        KAFKA: kafka_env().get("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs"),
        REDIS: "/data",
    }
    for name, path in data_dirs.items():
        targets = {target: source for source, target in mounts(name)}
        assert path in targets, f"service {name!r} keeps its data in {path}, which is no volume"
        source = targets[path]
        assert source and source in declared, (
            f"service {name!r} mounts {source!r} on {path}, not a declared named volume"
        )


# --- the secured profile (docker-compose.secured.yml, R23) ----------------------------------

SECURED_FILE = ROOT / "docker-compose.secured.yml"
SECURED: dict[str, Any] = yaml.safe_load(SECURED_FILE.read_text())
SECRETS_DIR = "./deploy/secured/secrets/"


def merged_service(name: str) -> dict[str, Any]:
    """A service as `docker compose -f docker-compose.yml -f docker-compose.secured.yml`
    sees it: mappings merged key by key, anything else replaced, secrets added up."""
    base = dict(SERVICES.get(name, {}))
    override = SECURED["services"].get(name, {})
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        elif key == "secrets":
            base[key] = [*base.get(key, []), *value]
        else:
            base[key] = value
    return base


def secured_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for var in list(os.environ):
        if var.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(var)
    env = merged_service(name).get("environment") or {}
    for var, value in env.items():
        if var.startswith(ENV_PREFIX) and value is not None:
            monkeypatch.setenv(var, resolve(name, var, value) or "")
    return settings_class(name)()


def secret_path(name: str, path: Path | None) -> str:
    """The secret a /run/secrets/<x> setting names, checked to be mounted in the service."""
    assert path is not None, f"service {name!r}: a secret setting is unset"
    assert path.parent == Path("/run/secrets"), f"service {name!r}: {path} is not a secret"
    mounted = merged_service(name).get("secrets") or []
    assert path.name in mounted, f"service {name!r} reads {path} but mounts {mounted}"
    return path.name


def test_secured_profile_overrides_existing_services_and_declares_its_secrets() -> None:
    from services.common.acl_table import PRINCIPALS, REDIS_USERS

    extra = set(SECURED["services"]) - set(SERVICES)
    assert extra == {"kafka-setup"}, f"the profile adds services {extra}, expected kafka-setup"
    declared = SECURED.get("secrets") or {}
    for name, spec in declared.items():
        assert spec == {"file": SECRETS_DIR + name}, f"secret {name!r} is {spec}"
    used = {s for svc in SECURED["services"].values() for s in svc.get("secrets", [])}
    assert used <= declared.keys(), f"secrets used but not declared: {used - declared.keys()}"
    wanted = {f"kafka-{p}" for p in (*PRINCIPALS, "admin")} | {
        f"redis-{u}" for u in (*REDIS_USERS, "admin")
    }
    assert wanted <= declared.keys(), f"no secret for {sorted(wanted - declared.keys())}"


def test_secured_services_connect_each_with_its_own_principal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.common.acl_table import PRINCIPALS, REDIS_USERS

    principals: dict[str, str] = {}
    for name in ours():
        assert name in SECURED["services"], f"service {name!r} is not secured by the profile"
        with monkeypatch.context() as patch:
            s = secured_settings(name, patch)
        assert s.kafka_security_protocol == "SASL_SSL", f"{name}: {s.kafka_security_protocol}"
        assert s.kafka_bootstrap == "kafka:9094", f"{name} bootstraps from {s.kafka_bootstrap}"
        assert s.kafka_sasl_password is None, f"{name}: a Kafka password in the environment"
        assert secret_path(name, s.kafka_sasl_password_file) == f"kafka-{s.kafka_sasl_username}"
        secret_path(name, s.kafka_ssl_ca_file)
        principals[name] = s.kafka_sasl_username
        if module_of(name) == "services.common.topics":
            assert s.kafka_sasl_username == "admin", "topics are created by the admin"
            continue
        assert s.kafka_sasl_username in PRINCIPALS, f"{name}: {s.kafka_sasl_username}"
        assert s.kafka_sasl_mechanism == "SCRAM-SHA-512", f"{name}: {s.kafka_sasl_mechanism}"
        assert s.redis_url.startswith("rediss://"), f"{name}: {s.redis_url}"
        assert s.redis_username in REDIS_USERS and s.redis_password is None, name
        assert secret_path(name, s.redis_password_file) == f"redis-{s.redis_username}"
        for path in (s.redis_tls_ca_file, s.redis_tls_cert_file, s.redis_tls_key_file):
            secret_path(name, path)
        deps = depends_on(name) | (merged_service(name).get("depends_on") or {})
        assert deps.get("kafka-setup", {}).get("condition") == "service_completed_successfully"
    assert len(set(principals.values())) == len(principals), f"a principal shared: {principals}"


def test_secured_kafka_is_sasl_ssl_only_with_acls() -> None:
    env = {k: str(v) for k, v in merged_service(KAFKA)["environment"].items()}
    listeners = dict(
        x.split(":", 1) for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert listeners == {"SASL_SSL": "SASL_SSL", "CONTROLLER": "SASL_PLAINTEXT"}, listeners
    assert env["KAFKA_LISTENERS"] == "SASL_SSL://:9094,CONTROLLER://:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "SASL_SSL://kafka:9094"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("metadata.authorizer.StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    assert env["KAFKA_SSL_KEYSTORE_TYPE"] == "PEM"
    jaas = [v for k, v in env.items() if k.endswith("_SASL_JAAS_CONFIG")]
    passwords = [p for v in jaas for p in re.findall(r'(?:password|user_\w+)="([^"]*)"', v)]
    assert passwords, "no JAAS password found to check"
    # `$$` is compose's escape: the broker gets `${dir:...}` and reads the secret file.
    literal = [p for p in passwords if p != "$${dir:/run/secrets:kafka-admin}"]
    assert not literal, f"a password written into the compose file: {literal}"


def test_secured_redis_is_tls_only_with_acl_users() -> None:
    cmd = argv(merged_service(REDIS)["command"])
    options = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    assert options["--port"] == "0", "the plaintext port stays open"
    assert options["--tls-port"] == "6379" and options["--tls-auth-clients"] == "yes"
    assert options["--aclfile"] == "/run/secrets/redis-users.acl"
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"


def test_kafka_setup_runs_the_acl_tables_current_script() -> None:
    from services.common.acl_table import COMPOSE_ADMIN_CONFIG, COMPOSE_BOOTSTRAP, setup_script

    committed = (ROOT / "deploy" / "secured" / "kafka-setup.sh").read_text()
    assert committed == setup_script(CommonSettings(), COMPOSE_BOOTSTRAP, COMPOSE_ADMIN_CONFIG), (
        "deploy/secured/kafka-setup.sh is stale: "
        "python -m services.common.acl_table --setup-script > deploy/secured/kafka-setup.sh"
    )
    setup = SECURED["services"]["kafka-setup"]
    assert setup["image"] == SERVICES[KAFKA]["image"]
    assert "./deploy/secured/kafka-setup.sh:/setup/kafka-setup.sh:ro" in setup["volumes"]
