"""/metrics and the documents (/docs, /redoc, /openapi.json, /asyncapi.json) can move to a
separate ops port, or be turned off, on every service (services/common/http.py).

Two more services on their own topic prefix: a handoff service with an ops port, and a
router with metrics and documents off. Probes (/healthz, /readyz) stay on the main port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.harness.env import settings_for
from devstack.ports import free_port
from devstack.services import ServiceProcess
from services.common.topics import ensure_topics

pytestmark = pytest.mark.integration

DOCUMENTS = ("/docs", "/redoc", "/openapi.json", "/asyncapi.json")


@pytest.fixture(scope="module")
async def prefixed_env(env: dict[str, str]) -> dict[str, str]:
    prefixed = {**env, "HANDOFF_TOPIC_PREFIX": "opsport."}
    await ensure_topics(settings_for(prefixed))
    return prefixed


@pytest.fixture(scope="module")
def split(prefixed_env: dict[str, str], stack_dir: Path) -> Iterator[tuple[str, str]]:
    ops_port = free_port()
    env = {**prefixed_env, "HANDOFF_OPS_PORT": str(ops_port)}
    proc = ServiceProcess("services.handoff", env, stack_dir / "services", "ops-split")
    proc.start()
    proc.wait_ready(60)
    yield proc.url, f"http://127.0.0.1:{ops_port}"
    proc.stop()


@pytest.fixture(scope="module")
def closed(prefixed_env: dict[str, str], stack_dir: Path) -> Iterator[str]:
    env = {**prefixed_env, "HANDOFF_HTTP_METRICS": "false", "HANDOFF_HTTP_DOCS": "false"}
    proc = ServiceProcess("services.router", env, stack_dir / "services", "ops-off")
    proc.start()
    proc.wait_ready(60)
    yield proc.url
    proc.stop()


def test_an_ops_port_takes_metrics_and_documents_off_the_public_port(
    split: tuple[str, str],
) -> None:
    public, ops = split
    for path in ("/metrics", *DOCUMENTS):
        assert httpx.get(public + path).status_code == 404, path
        assert httpx.get(ops + path).status_code == 200, path
    assert "handoff_api_requests_total" in httpx.get(ops + "/metrics").text
    assert "/v1/session" in httpx.get(ops + "/openapi.json").json()["paths"]
    for path in ("/healthz", "/readyz"):
        assert httpx.get(public + path).status_code == 200, path
        assert httpx.get(ops + path).status_code == 200, path
    assert httpx.get(public + "/console/").status_code == 200
    assert httpx.get(ops + "/console/").status_code == 404
    assert httpx.get(public + "/v1/session").status_code == 401  # the API stays public


def test_metrics_and_documents_can_be_turned_off(closed: str) -> None:
    for path in ("/metrics", *DOCUMENTS):
        assert httpx.get(closed + path).status_code == 404, path
    assert httpx.get(closed + "/readyz").status_code == 200
