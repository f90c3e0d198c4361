"""`python -m devstack.system`: the whole Handoff system on this machine (what `make run` runs).

Kafka (KRaft) and Redis (AOF) as local processes with their data under one folder, the
contract's topics, then the router, the handoff service, the timeout worker, the reference
agent and the web chat gateway. On the first run it publishes an agent `acme/support` with
handoff on (30 minute idle timeout) into the queues `default` and `billing` (both created
then, open around the clock), so a newcomer can ask the web chat for a person at once.
Once everything is ready it writes the services' settings to `<data>/handoff.env` (what
`handoffctl chat`/`desk` and `make demo` read) and removes that file when it stops.

Every HANDOFF_* variable exported when `make run` starts reaches the services; for instance
`HANDOFF_MINUTE_SECONDS=5 make run` makes an idle-timeout "minute" last 5 seconds (what a quick
`make demo` wants). Ctrl-C stops everything in reverse order: services first (they commit or
abort their open transaction), then Kafka, then Redis (which flushes its AOF on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from devstack.kafka import KafkaProcess
from devstack.ports import ensure_free
from devstack.process import ManagedProcess
from devstack.redis import RedisProcess
from devstack.services import PORT_SETTING, ServiceProcess
from services.common.settings import CommonSettings
from services.common.stackenv import write_env_file
from services.common.topics import ensure_topics
from services.handoff.domain.modes import HandoffConfig
from services.handoff.domain.tickets import QueueSettings
from services.handoff.state.store import ModeStore
from services.handoff.state.ticket_store import QueueVersionConflictError

SERVICES = (
    ("services.router", "HANDOFF_ROUTER_HTTP_PORT", 8081),
    ("services.handoff", "HANDOFF_HANDOFF_HTTP_PORT", 8080),
    ("services.timeout", "HANDOFF_TIMEOUT_HTTP_PORT", 8082),
    ("services.agent", "HANDOFF_AGENT_HTTP_PORT", 8083),
    ("services.webchat", "HANDOFF_WEBCHAT_HTTP_PORT", 8084),
)
ENV_FILE = "handoff.env"
# The agent a newcomer finds published on the first run (only when it has no version yet).
SEED_TENANT, SEED_AGENT = "acme", "support"
SEED_CONFIG = HandoffConfig(
    enabled=True,
    idle_timeout_minutes=30,
    instructions="Hand off when: the user mentions a lawyer, legal action or a formal complaint.",
    queues=("default", "billing"),  # the reference agent sends billing reasons to `billing`
)
# The queues of the seeded tenant (created once, when missing): both open around the clock;
# billing has a 10-minute pickup target after which the user is told again.
SEED_QUEUES = {
    "default": QueueSettings(display_name="Support"),
    "billing": QueueSettings(display_name="Billing", pickup_minutes=10, on_no_pickup="notify"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devstack.system", description=__doc__)
    p.add_argument("--data", type=Path, default=Path(".run"), help="folder for all data and logs")
    p.add_argument("--kafka-port", type=int, default=9092)
    p.add_argument("--redis-port", type=int, default=6379)
    return p


def _env(kafka: KafkaProcess, redis: RedisProcess, data: Path) -> dict[str, str]:
    """The services' settings: what the user exported (HANDOFF_*), plus where the stack is."""
    env = {k: v for k, v in os.environ.items() if k.startswith("HANDOFF_")}
    env.setdefault("HANDOFF_WEBCHAT_DATA_DIR", str(data / "webchat"))
    if "HANDOFF_WEBCHAT_HTTP_PORT" in env:  # the operator API's desk files link to the gateway
        port = env["HANDOFF_WEBCHAT_HTTP_PORT"]
        env.setdefault("HANDOFF_WEBCHAT_PUBLIC_URL", f"http://127.0.0.1:{port}")
    # A dev stack only: the chat page's ?user= names the end user (off in the code's defaults,
    # since anyone could then read and post as any user). The summary says it is on.
    env.setdefault("HANDOFF_WEBCHAT_QUERY_USER", "true")
    env.update(
        HANDOFF_KAFKA_BOOTSTRAP=kafka.bootstrap,
        HANDOFF_REDIS_URL=redis.url,
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        PATH=os.environ.get("PATH", ""),
    )
    return env


async def seed_agent(redis_url: str) -> str:
    """Publishes acme/support with handoff on, once: only if it has no version at all."""
    store = ModeStore.from_url(redis_url)
    try:
        versions, published = await store.agent_versions(SEED_TENANT, SEED_AGENT)
        name = f"{SEED_TENANT}/{SEED_AGENT}"
        if versions:
            state = f"version {published} published" if published else "no published version"
            return f"{name} has {len(versions)} version(s), {state}"
        await store.load_functions()
        at = datetime.now(UTC).isoformat()
        n = await store.apply_agent_version(SEED_TENANT, SEED_AGENT, SEED_CONFIG, at, "make-run")
        await store.publish_agent_version(SEED_TENANT, SEED_AGENT, n, "make-run")
        return f"{name} version {n} published: handoff on, idle timeout 30 min"
    finally:
        await store.close()


async def seed_queues(redis_url: str) -> str:
    """Creates the seeded tenant's queues that do not exist yet (never changes one)."""
    store = ModeStore.from_url(redis_url)
    try:
        await store.load_functions()
        created = []
        at = datetime.now(UTC).isoformat()
        for queue, settings in SEED_QUEUES.items():
            try:
                await store.put_queue(SEED_TENANT, queue, settings, at, "make-run", 0)
                created.append(queue)
            except QueueVersionConflictError:
                pass  # configured already: an operator's settings stay
        made = ", ".join(created) if created else "none new"
        return f"{SEED_TENANT} queues {', '.join(SEED_QUEUES)} ({made} created)"
    finally:
        await store.close()


def main() -> int:
    args = _parser().parse_args()
    data = args.data.resolve()
    ensure_free(args.kafka_port, "Kafka")
    ensure_free(args.redis_port, "Redis")
    for _, setting, default in SERVICES:
        ensure_free(int(os.environ.get(setting, default)), setting)
    env_file = data / ENV_FILE
    env_file.unlink(missing_ok=True)  # its presence means "running": never leave a stale one
    kafka = KafkaProcess(data / "kafka", port=args.kafka_port, die_with_parent=True)
    redis = RedisProcess(data / "redis", port=args.redis_port)
    started: list[ManagedProcess] = []
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for server in (redis, kafka):
            server.start()
            started.append(server)
        redis.wait_ready(30)
        kafka.wait_ready(120)
        env = _env(kafka, redis, data)
        settings = CommonSettings(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url)
        created = asyncio.run(ensure_topics(settings))
        seeded = asyncio.run(seed_agent(redis.url))
        queues = asyncio.run(seed_queues(redis.url))
        services = []
        for module, setting, default in SERVICES:
            port = int(os.environ.get(setting, default))
            proc = ServiceProcess(module, env, data / "services", "local", http_port=port)
            proc.start()
            started.append(proc)
            services.append(proc)
        for service in services:
            service.wait_ready(60)
        ports = {PORT_SETTING[p.module]: str(p.http_port) for p in services}
        write_env_file(env_file, {**env, **ports})
        _print_summary(data, kafka, redis, services, created, f"{seeded}; {queues}", env)
        stop.wait()
        print("\nstopping…", flush=True)
        return 0
    except Exception as exc:  # a start failure: say what and where its log is, then clean up
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        env_file.unlink(missing_ok=True)
        for process in reversed(started):
            process.stop()


def _print_summary(
    data: Path,
    kafka: KafkaProcess,
    redis: RedisProcess,
    services: list[ServiceProcess],
    created: list[str],
    seeded: str,
    env: dict[str, str],
) -> None:
    by_module = {proc.module: proc for proc in services}
    chat_url = f"{by_module['services.webchat'].url}/?tenant={SEED_TENANT}&agent={SEED_AGENT}"
    minute = env.get("HANDOFF_MINUTE_SECONDS", "60")
    lines = [
        "",
        "Handoff is running. Ctrl-C stops everything.",
        f"  Kafka     {kafka.bootstrap}   (log {kafka.log_path})",
        f"  Redis     {redis.url}   (AOF in {redis.data_dir}, log {redis.log_path})",
        f"  topics    {'created ' + ', '.join(created) if created else 'all existed'}",
        f"  agent     {seeded}",
        f"  minute    an idle-timeout minute lasts {minute} s (HANDOFF_MINUTE_SECONDS)",
    ]
    if env.get("HANDOFF_WEBCHAT_QUERY_USER", "").lower() in ("1", "true", "yes", "on"):
        lines.append(
            "  web chat  dev setup: ?user= names the end user (HANDOFF_WEBCHAT_QUERY_USER=true;"
            " never on a deployment: anyone could read and post as any user)"
        )
    for proc in services:
        lines.append(f"  {proc.module:<17} {proc.url}/readyz  /metrics   (log {proc.log_path})")
    lines += [
        f"  settings  {data / ENV_FILE}",
        f"  data      {data}",
        "",
        f"Web chat:  {chat_url}",
        '  type "I want to talk to a person": the agent hands off and a teammate\'s notice shows',
        "",
        "From a terminal (README, 'Try it'):",
        f"  .venv/bin/handoffctl chat --tenant {SEED_TENANT} --agent {SEED_AGENT} --user alice",
        f"  .venv/bin/handoffctl desk watch --tenant {SEED_TENANT}",
        f"  .venv/bin/handoffctl desk reply --tenant {SEED_TENANT} --agent {SEED_AGENT} "
        "--user alice 'Hi, Jane here.'",
        "  make demo        # the eight checklist paths against this stack",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
