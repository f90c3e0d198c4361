"""What every benchmark shares: its own Kafka and Redis, the machine's description, results.

Absolute figures wobble on a shared machine, so every figure that matters is reported as a
ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from devstack.stack import Stack
from devstack.stack import local_stack as devstack_stack

ROOT = Path(__file__).resolve().parent.parent

RESULTS = ROOT / "bench" / "results"


def local_stack(
    root: Path, partitions: int = 6, broker: dict[str, str] | None = None
) -> AbstractContextManager[Stack]:
    """A broker (heap 1 GiB, `partitions` per new topic, `broker` properties besides) and a
    Redis server of the bench's own."""
    return devstack_stack(root, {"num.partitions": str(partitions), **(broker or {})}, heap="1g")


def machine() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    import aiokafka
    import confluent_kafka
    import redis

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "java": version(["java", "-version"]),
        "redis_server": version(["redis-server", "--version"]),
        "kafka": (ROOT / "deploy" / "kafka" / "pom.xml")
        .read_text()
        .split("<kafka.version>")[1]
        .split("<")[0],
        "aiokafka": aiokafka.__version__,
        "confluent_kafka": confluent_kafka.version(),
        "librdkafka": confluent_kafka.libversion()[0],
        "redis_py": redis.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def save(name: str, figures: dict[str, Any], settings: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": settings,
        "figures": figures,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"saved {path}")
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used: a cost per message that the other
    processes on a shared machine do not distort as much as wall-clock throughput."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
