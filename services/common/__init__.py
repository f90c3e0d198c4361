"""Pieces every Handoff service shares: settings, logging, metrics, the Kafka processor, HTTP ops."""
