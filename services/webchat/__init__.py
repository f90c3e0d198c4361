"""The web chat channel: an end-user chat page, UserMessages in, OutboundMessages out (SSE)."""
