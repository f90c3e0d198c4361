"""`python -m devstack.system`: the whole Handoff system on this machine (what `make run` runs).

Kafka (KRaft) and Redis (AOF) as local processes with their data under one folder, the
contract's topics, then the router, the handoff service and the timeout worker. Ctrl-C stops
everything in reverse order: services first (they commit or abort their open transaction),
then Kafka, then Redis (which flushes its AOF on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from pathlib import Path

from devstack.kafka import KafkaProcess
from devstack.ports import ensure_free
from devstack.process import ManagedProcess
from devstack.redis import RedisProcess
from devstack.services import ServiceProcess
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics

SERVICES = (
    ("services.router", "HANDOFF_ROUTER_HTTP_PORT", 8081),
    ("services.handoff", "HANDOFF_HANDOFF_HTTP_PORT", 8080),
    ("services.timeout", "HANDOFF_TIMEOUT_HTTP_PORT", 8082),
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devstack.system", description=__doc__)
    p.add_argument("--data", type=Path, default=Path(".run"), help="folder for all data and logs")
    p.add_argument("--kafka-port", type=int, default=9092)
    p.add_argument("--redis-port", type=int, default=6379)
    return p


def _env(kafka: KafkaProcess, redis: RedisProcess) -> dict[str, str]:
    """The services' settings: what the user exported (HANDOFF_*), plus where the stack is."""
    env = {k: v for k, v in os.environ.items() if k.startswith("HANDOFF_")}
    env.update(
        HANDOFF_KAFKA_BOOTSTRAP=kafka.bootstrap,
        HANDOFF_REDIS_URL=redis.url,
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        PATH=os.environ.get("PATH", ""),
    )
    return env


def main() -> int:
    args = _parser().parse_args()
    data = args.data.resolve()
    ensure_free(args.kafka_port, "Kafka")
    ensure_free(args.redis_port, "Redis")
    for _, setting, default in SERVICES:
        ensure_free(int(os.environ.get(setting, default)), setting)
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
        env = _env(kafka, redis)
        created = asyncio.run(ensure_topics(CommonSettings(kafka_bootstrap=kafka.bootstrap)))
        services = []
        for module, setting, default in SERVICES:
            port = int(os.environ.get(setting, default))
            proc = ServiceProcess(module, env, data / "services", "local", http_port=port)
            proc.start()
            started.append(proc)
            services.append(proc)
        for service in services:
            service.wait_ready(60)
        _print_summary(data, kafka, redis, services, created)
        stop.wait()
        print("\nstopping…", flush=True)
        return 0
    except Exception as exc:  # a start failure: say what and where its log is, then clean up
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for process in reversed(started):
            process.stop()


def _print_summary(
    data: Path,
    kafka: KafkaProcess,
    redis: RedisProcess,
    services: list[ServiceProcess],
    created: list[str],
) -> None:
    lines = [
        "",
        "Handoff is running. Ctrl-C stops everything.",
        f"  Kafka     {kafka.bootstrap}   (log {kafka.log_path})",
        f"  Redis     {redis.url}   (AOF in {redis.data_dir}, log {redis.log_path})",
        f"  topics    {'created ' + ', '.join(created) if created else 'all existed'}",
    ]
    for proc in services:
        lines.append(f"  {proc.module:<17} {proc.url}/readyz  /metrics   (log {proc.log_path})")
    lines += [
        f"  data      {data}",
        "",
        "Try it (README, 'Two commands'):",
        "  make agent TENANT=acme AGENT=support IDLE=30     # publish a version with handoff on",
        f"  kcat -P -b {kafka.bootstrap} -t chat.inbound -k acme:support:web:alice  # UserMessage",
        f"  kcat -C -b {kafka.bootstrap} -t chat.ai-requests -t chat.human-queue -t handoff.events",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
