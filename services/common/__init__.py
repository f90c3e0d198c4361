"""What every Handoff service shares: settings, logging, metrics, Kafka processor, ops HTTP."""
