"""The Grafana dashboard (deploy/grafana) is generated, current, and charts every metric."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from prometheus_client import REGISTRY

import services.agent.worker
import services.common.metrics
import services.handoff.analytics.consumer
import services.handoff.api.desk
import services.handoff.api.metrics  # noqa: F401  (and the operator API's)

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "deploy" / "grafana" / "build_dashboard.py"


def built() -> dict:  # type: ignore[type-arg]
    spec = importlib.util.spec_from_file_location("build_dashboard", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dashboard()  # type: ignore[no-any-return]


def test_the_checked_in_dashboard_is_the_generated_one() -> None:
    checked_in = json.loads((ROOT / "deploy" / "grafana" / "handoff.json").read_text())
    assert checked_in == built()


def test_every_handoff_metric_has_a_panel() -> None:
    exprs = " ".join(t["expr"] for p in built()["panels"] for t in p["targets"])
    ours = {m.name for m in REGISTRY.collect() if m.name.startswith("handoff_")}
    assert ours and {name for name in ours if name not in exprs} == set()
