"""Command line: ``python -m devstack up --data DIR`` and ``python -m devstack jars``.

``up`` is what ``make run`` uses to get the same real Kafka and Redis the tests use, in the
foreground, stopped cleanly by Ctrl-C. ``jars`` pre-fetches the broker classpath (and the
start-up CDS archive) during installation so the first test run does not pay for it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from devstack.kafka import KafkaProcess, build_cds_archive, kafka_jars_dir
from devstack.kafka_jars import JarsFetchError
from devstack.ports import PortInUseError
from devstack.process import ProcessStartError
from devstack.redis import RedisProcess

ENV_FILE = "stack.env"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run Kafka and Redis in the foreground until Ctrl-C")
    up.add_argument("--data", type=Path, required=True, help="data directory (kept across runs)")
    up.add_argument("--kafka-port", type=int, default=9092)
    up.add_argument(
        "--kafka-controller-port", type=int, default=None, help="default: kafka port + 1"
    )
    up.add_argument("--redis-port", type=int, default=6379)
    up.add_argument("--kafka-heap", default="512m")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    jars = sub.add_parser("jars", help="fetch the Kafka jars (and CDS archive), print the folder")
    jars.add_argument("--no-cds", action="store_true", help="skip building the CDS archive")
    return parser


def cmd_jars(no_cds: bool) -> int:
    """Fetch jars, build the CDS archive unless told not to, print the jars folder."""
    jars = kafka_jars_dir()
    if not no_cds:
        archive = build_cds_archive(jars)
        print(f"cds archive: {archive or 'disabled'}", file=sys.stderr)
    print(jars)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start both servers, publish ``stack.env`` once both are ready, run until a signal."""
    data: Path = args.data.resolve()
    env_file = data / ENV_FILE
    env_file.unlink(missing_ok=True)  # its presence means "ready": never leave a stale one
    controller_port = args.kafka_controller_port or args.kafka_port + 1
    kafka = KafkaProcess(data / "kafka", args.kafka_port, controller_port, heap=args.kafka_heap)
    redis = RedisProcess(data / "redis", args.redis_port)
    stop = threading.Event()
    ready = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not ready:  # still starting: abandon the wait, `finally` stops what started
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        began = time.monotonic()
        redis.start()
        kafka.start()
        redis.wait_ready(args.timeout)
        kafka.wait_ready(args.timeout)
        _write_env(env_file, kafka, redis)
        ready = True
        print(_banner(kafka, redis, data, time.monotonic() - began), flush=True)
        while not stop.wait(0.5):
            for proc in (kafka, redis):
                if not proc.is_running():
                    print(f"devstack: {proc.name} exited unexpectedly; see {proc.log_path}")
                    return 1
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        print("devstack: stopping (redis SHUTDOWN flushes its AOF, then kafka)", flush=True)
        env_file.unlink(missing_ok=True)
        redis.stop()
        kafka.stop()


def _write_env(path: Path, kafka: KafkaProcess, redis: RedisProcess) -> None:
    """Write atomically so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"HANDOFF_KAFKA_BOOTSTRAP={kafka.bootstrap}\nHANDOFF_REDIS_URL={redis.url}\n")
    tmp.replace(path)


def _banner(kafka: KafkaProcess, redis: RedisProcess, data: Path, took: float) -> str:
    return "\n".join(
        [
            f"devstack: ready in {took:.1f}s (Ctrl-C to stop)",
            f"  kafka bootstrap  {kafka.bootstrap}",
            f"  redis url        {redis.url}",
            f"  data dir         {data}",
            f"  kafka log        {kafka.log_path}",
            f"  redis log        {redis.log_path}",
            f"  env file         {data / ENV_FILE}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; expected failures print one clear line instead of a traceback."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "jars":
            return cmd_jars(args.no_cds)
        return cmd_up(args)
    except (PortInUseError, JarsFetchError, ProcessStartError) as exc:
        print(f"devstack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
