"""deploy/prometheus/alerts.yml names only metrics the services export (promtool, run by
`make test`, checks the rules' syntax and behaviour, not that their metrics exist)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import services.agent.worker
import services.common.metrics
import services.handoff.api.desk
import services.handoff.api.metrics  # noqa: F401  (and the operator API's)

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    return {
        m.name + suffix
        for m in REGISTRY.collect()
        if m.name.startswith("handoff_")
        for suffix in SUFFIXES.get(m.type, ("",))
    }


def test_every_alert_names_metrics_that_exist() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "HandoffPartitionStuck",
        "HandoffConsumerLagGrowing",
        "HandoffDeadLettersHigh",
        "HandoffTimeoutRevertLagHigh",
    }
    for rule in rules:
        named = set(re.findall(r"\bhandoff_[a-z_]+", rule["expr"]))
        assert named, rule["alert"]
        assert named <= exported(), f"{rule['alert']}: {named - exported()}"
