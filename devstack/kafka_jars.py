"""Fetch Apache Kafka's broker jars from Maven Central into a local cache folder.

Maven Central is one of the few registries reachable from this project's machines, and
``deploy/kafka/pom.xml`` pins the broker version, so ``java -cp 'DIR/*' kafka.Kafka`` is how
a real broker gets run without Docker or a tarball download.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

POM_PATH = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"
JARS_ENV = "HANDOFF_KAFKA_JARS"
MARKER = ".devstack-complete"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class JarsFetchError(RuntimeError):
    """Maven is missing or could not fetch the jars; the message says what to do."""


def kafka_version(pom: Path = POM_PATH) -> str:
    """The Kafka version pinned in the pom, so the cache folder name follows the pin."""
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise JarsFetchError(f"{pom} has no <properties><kafka.version>")
    return (node.text or "").strip()


def default_jars_dir(pom: Path = POM_PATH) -> Path:
    """``$HANDOFF_KAFKA_JARS`` if set, else ``~/.cache/handoff/kafka-<version>/``."""
    override = os.environ.get(JARS_ENV)
    if override:
        return Path(override).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "handoff" / f"kafka-{kafka_version(pom)}"


def kafka_jars_dir(pom: Path = POM_PATH) -> Path:
    """Return a folder holding the complete broker classpath, fetching it if needed.

    A folder counts as complete only when it holds the marker file, written last, so a
    fetch cut short (Ctrl-C, network drop) is redone next time instead of leaving a broker
    that dies on a missing class. The marker records a hash of the pom: editing the pom
    (say, a log4j bump) refetches. An empty marker is trusted as is, which lets someone
    point ``HANDOFF_KAFKA_JARS`` at jars they brought themselves (``touch DIR/<marker>``).
    A file lock keeps parallel test processes from fetching into the same folder at once.
    """
    target = default_jars_dir(pom)
    stamp = _pom_stamp(pom)
    if _is_complete(target, stamp):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_complete(target, stamp):
            _fetch(pom, target, stamp)
    return target


def _pom_stamp(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _is_complete(target: Path, stamp: str) -> bool:
    marker = target / MARKER
    if not marker.is_file() or not any(target.glob("*.jar")):
        return False
    recorded = marker.read_text().strip()
    return recorded in ("", stamp)


def _fetch(pom: Path, target: Path, stamp: str) -> None:
    """Copy into a scratch folder first, then swap only ``*.jar`` files into ``target``.

    Only jar files are ever deleted from ``target``, since with the env override it may be
    a folder the user chose.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsFetchError("Maven (mvn) not found: run `make deps` (apt-get install maven)")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.partial-", dir=target.parent) as tmp:
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        jars = sorted(Path(tmp).glob("*.jar"))
        if result.returncode != 0 or not jars:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise JarsFetchError(
                f"fetching Kafka jars failed (exit {result.returncode}): {' '.join(cmd)}\n{output}"
            )
        (target / MARKER).unlink(missing_ok=True)
        for old in target.glob("*.jar"):
            old.unlink()
        for jar in jars:
            shutil.move(jar, target / jar.name)
        (target / MARKER).write_text(stamp + "\n")
