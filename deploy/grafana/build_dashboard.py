"""Writes deploy/grafana/handoff.json, the Grafana dashboard of the metrics in the README.

    .venv/bin/python deploy/grafana/build_dashboard.py

Generated rather than hand-edited, so each panel is one line here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (title, PromQL, unit, legend)
PANELS = [
    ("Messages routed /s, by mode", "sum by (mode) (rate(handoff_messages_routed_total[1m]))", "ops", "{{mode}}"),
    ("Dead letters /s, by kind", "sum by (kind, source_topic) (rate(handoff_dead_letters_total[5m]))", "ops", "{{kind}} ← {{source_topic}}"),
    ("Agent replies /s, by gate verdict", "sum by (verdict) (rate(handoff_agent_replies_total[1m]))", "ops", "{{verdict}}"),
    ("Mode changes /s, by cause", "sum by (cause) (rate(handoff_mode_changes_total[5m]))", "ops", "{{cause}}"),
    ("Commands /s, by result", "sum by (result) (rate(handoff_commands_total[5m]))", "ops", "{{result}}"),
    ("Duplicates dropped /s", "sum by (topic) (rate(handoff_duplicates_dropped_total[5m]))", "ops", "{{topic}}"),
    ("Timeout revert lag p50 / p99", "histogram_quantile(0.99, sum by (le) (rate(handoff_timeout_revert_lag_seconds_bucket[5m])))", "s", "p99"),
    ("Consumer lag, by partition", "max by (service, topic, partition) (handoff_consumer_lag_records)", "short", "{{service}} {{topic}}[{{partition}}]"),
    ("Stuck partitions: seconds failing", "max by (service, topic, partition) (handoff_partition_stuck_seconds) > 0", "s", "{{service}} {{topic}}[{{partition}}]"),
    ("Stuck partitions: failed attempts in a row", "max by (service, topic, partition) (handoff_partition_failed_attempts) > 0", "short", "{{service}} {{topic}}[{{partition}}]"),
    ("Redis round trip p99, by call", "histogram_quantile(0.99, sum by (le, call) (rate(handoff_redis_call_seconds_bucket[5m])))", "s", "{{call}}"),
    ("Batch size p50, by service", "histogram_quantile(0.5, sum by (le, service) (rate(handoff_batch_records_bucket[5m])))", "short", "{{service}}"),
    ("Operator API requests /s, by status", "sum by (status) (rate(handoff_api_requests_total[5m]))", "ops", "{{status}}"),
    ("Operator API latency p99", "histogram_quantile(0.99, sum by (le) (rate(handoff_api_request_seconds_bucket[5m])))", "s", "p99"),
    ("Desk streams connected", "sum(handoff_desk_clients)", "short", "desks"),
    ("Reference agent turns /s, by outcome", "sum by (outcome) (rate(handoff_agent_turns_total[5m]))", "ops", "{{outcome}}"),
    ("Pickup targets missed /h, by queue", "sum by (tenant, queue) (increase(handoff_pickup_overdue_total[1h]))", "short", "{{tenant}}/{{queue}}"),
    ("Ticket actions /s, by action and result", "sum by (action, result) (rate(handoff_ticket_actions_total[5m]))", "ops", "{{action}} {{result}}"),
    ("Waiting notices /s", "sum(rate(handoff_waiting_notices_total[5m]))", "ops", "notices"),
    ("Handoffs /h, by queue and cause", "sum by (tenant, queue, cause) (increase(handoff_handoffs_total[1h]))", "short", "{{tenant}}/{{queue}} {{cause}}"),
    ("Pickup wait p90, by queue", "histogram_quantile(0.9, sum by (le, tenant, queue) (rate(handoff_pickup_wait_seconds_bucket[1h])))", "s", "{{tenant}}/{{queue}}"),
    ("First human reply p90, by queue", "histogram_quantile(0.9, sum by (le, tenant, queue) (rate(handoff_first_human_reply_seconds_bucket[1h])))", "s", "{{tenant}}/{{queue}}"),
    ("Handle time p90, by queue", "histogram_quantile(0.9, sum by (le, tenant, queue) (rate(handoff_handle_seconds_bucket[1h])))", "s", "{{tenant}}/{{queue}}"),
    ("Returns to AI /h, by cause", "sum by (tenant, cause) (increase(handoff_returns_to_ai_total[1h]))", "short", "{{tenant}} {{cause}}"),
    ("Bounce-backs /h, by queue", "sum by (tenant, queue) (increase(handoff_bounce_backs_total[1h]))", "short", "{{tenant}}/{{queue}}"),
    ("Analytics records read again /s", "sum(rate(handoff_analytics_duplicates_total[5m]))", "ops", "not counted twice"),
]  # fmt: skip


def panel(n: int, title: str, expr: str, unit: str, legend: str) -> dict[str, Any]:
    return {
        "id": n + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (n % 2) * 12, "y": (n // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
    }


def dashboard() -> dict[str, Any]:
    return {
        "title": "Handoff",
        "uid": "handoff",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]
        },
        "panels": [panel(n, *spec) for n, spec in enumerate(PANELS)],
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("handoff.json")
    out.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {out}")
