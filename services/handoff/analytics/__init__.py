"""R21 measured: the human side's figures, computed from the public events only.

`domain` folds ModeChanged, TicketChanged and human OutboundMessage records into per-hour
counters and samples (pure); `store` keeps them in Redis, each record applied at most once;
`consumer` is the Kafka worker the handoff service runs; `report` answers the analytics API.
"""
